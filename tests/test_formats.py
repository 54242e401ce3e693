from __future__ import annotations

from pathlib import Path

import pytest

from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format, model_size_bytes, require_format


def test_detects_every_format(
    baseline_model: Path, fp32_tflite: Path, fp32_onnx: Path, tmp_path: Path
) -> None:
    from kfedge.models import export_savedmodel

    assert detect_format(baseline_model) == "keras"
    assert detect_format(fp32_tflite) == "tflite"
    assert detect_format(fp32_onnx) == "onnx"
    sm = export_savedmodel(baseline_model, tmp_path)
    assert detect_format(sm) == "savedmodel"
    assert model_size_bytes(sm) > model_size_bytes(fp32_tflite) / 2
    # content, not suffix, decides
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(fp32_tflite.read_bytes())
    assert detect_format(renamed) == "tflite"


def test_h5_is_detected(baseline_model: Path, tmp_path: Path) -> None:
    from kfedge.models import load_keras, save_keras

    out = save_keras(load_keras(baseline_model), tmp_path / "m.h5")
    assert detect_format(out) == "h5"


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        (
            "model.tflite",
            b"not a flatbuffer at all" * 4,
            "content is a text file, not a valid tflite",
        ),
        ("model.onnx", b"", "content is an empty file"),
        ("model.keras", b"PK\x03\x04garbage", "corrupt zip"),
        ("weights.txt", b"hello world, plain text here", "is a text file; expected a .keras"),
    ],
)
def test_corrupt_or_unknown_files_name_path_found_and_expected(
    tmp_path: Path, name: str, content: bytes, expect: str
) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ModelFormatError) as exc:
        detect_format(p)
    msg = str(exc.value)
    assert str(p) in msg
    assert expect in msg


def test_missing_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="model not found"):
        detect_format(tmp_path / "nope.tflite")
    with pytest.raises(ModelFormatError, match="without saved_model.pb"):
        detect_format(tmp_path)


def test_require_format_refuses(fp32_tflite: Path) -> None:
    with pytest.raises(ModelFormatError, match="pruning needs a model in one of keras, h5"):
        require_format(fp32_tflite, ("keras", "h5", "savedmodel"), "pruning")


def test_a_missing_runtime_names_its_extra_and_its_serving_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A one-runtime serving image given another format's model: the error names the extra to
    install and the image that serves that format."""
    import sys

    from kfedge.compat import require
    from kfedge.errors import DependencyError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(DependencyError) as err:
        require("onnxruntime")
    msg = str(err.value)
    assert "pip install 'kfedge[serving-onnx]'" in msg
    assert "serve onnx models with ghcr.io/kfedge/kfedge-serving-onnx:" in msg
    assert "\n" not in msg
