"""Shared fixtures: the sample dataset and tiny trained models, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KFEDGE_THREADS", "2")

from s3fixtures import *  # noqa: E402,F403

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in digits sample as a split dataset directory (32x32x1)."""
    from kfedge.data import prepare_dataset

    out = tmp_path_factory.mktemp("sample_dataset")
    prepare_dataset("sample://digits", out, [32, 32, 1], 10)
    return out


@pytest.fixture(scope="session")
def baseline_model(sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample baseline (tf_keras .keras), trained once per session (~10 s)."""
    from kfedge.sample import train_sample_baseline

    out = tmp_path_factory.mktemp("baseline") / "baseline.keras"
    train_sample_baseline(sample_dataset, out)
    return out


@pytest.fixture(scope="session")
def fp32_tflite(baseline_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline converted to FP32 TFLite."""
    from kfedge.convert import convert_tflite

    return convert_tflite(baseline_model, tmp_path_factory.mktemp("fp32") / "model.tflite")


@pytest.fixture(scope="session")
def fp32_onnx(baseline_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline converted to FP32 ONNX (tf2onnx, opset 17)."""
    from kfedge.convert import convert_onnx

    return convert_onnx(baseline_model, tmp_path_factory.mktemp("fp32onnx") / "model.onnx")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (KServe CRDs, Open Inference Protocol); skips where absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent (only the kfedge workspace has the reference specs)")
    return REFERENCE


@pytest.fixture(scope="module")
def keras3():  # noqa: ANN201
    """Keras 3 (beside tf_keras), seeded (the Keras 3 bridge tests)."""
    from kfedge import compat

    compat.tf()
    keras = pytest.importorskip("keras")
    assert keras.__version__.startswith("3")
    keras.utils.set_random_seed(0)
    return keras
