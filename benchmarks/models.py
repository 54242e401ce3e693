"""The benchmarks' models: real-size Keras applications with random weights, and their data.

Latency and file size do not depend on the weights' values, so the models are built with
``weights=None`` (no download) and calibrated / fine-tuned on random data; accuracy of these
models is meaningless and never reported (the sample model carries the accuracy figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model.

    Attributes:
        key: Identifier used in results and file names.
        label: Human-readable name (the generated text uses it).
        builder: ``MobileNetV2`` / ``ResNet50`` (``keras.applications``) or ``mobilenet_tiny``
            (the sample's architecture, :func:`kfedge.sample.build_mobilenet_tiny`).
        input_shape: (H, W, C).
        classes: Output classes (1000 = the ImageNet head of the real model).
        alpha: MobileNetV2 width multiplier.
    """

    key: str
    label: str
    builder: str
    input_shape: tuple[int, int, int]
    classes: int = 1000
    alpha: float = 1.0


#: Every model the benchmarks know.
MODELS: dict[str, ModelSpec] = {
    s.key: s
    for s in (
        ModelSpec("mobilenetv2-224", "MobileNetV2 1.0 224x224", "MobileNetV2", (224, 224, 3)),
        ModelSpec("resnet50", "ResNet50 224x224", "ResNet50", (224, 224, 3)),
        ModelSpec(
            "mobilenetv2-0.35-96",
            "MobileNetV2 0.35 96x96",
            "MobileNetV2",
            (96, 96, 3),
            classes=10,
            alpha=0.35,
        ),
        ModelSpec(
            "mobilenet-tiny-32", "mobilenet_tiny 32x32 (random)", "mobilenet_tiny", (32, 32, 1), 10
        ),
    )
}


def spec(key: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``key``.

    Raises:
        ValueError: Unknown key (the message lists the known ones).
    """
    try:
        return MODELS[key]
    except KeyError:
        raise ValueError(
            f"unknown benchmark model {key!r}; expected one of {list(MODELS)}"
        ) from None


def build(s: ModelSpec, path: Path) -> int:
    """Build the model with random weights and save it as ``.keras``; return its parameter count."""
    from kfedge import compat
    from kfedge.models import save_keras

    keras = compat.keras()
    keras.utils.set_random_seed(0)
    if s.builder == "mobilenet_tiny":
        from kfedge.sample import build_mobilenet_tiny

        model = build_mobilenet_tiny(s.input_shape, s.classes)
    else:
        ctor = getattr(keras.applications, s.builder)
        kwargs: dict[str, Any] = {"input_shape": s.input_shape, "weights": None}
        kwargs["classes"] = s.classes
        if s.builder == "MobileNetV2":
            kwargs["alpha"] = s.alpha
        model = ctor(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_keras(model, path)
    return int(model.count_params())


def random_dataset(s: ModelSpec, out: Path, per_split: int, seed: int = 0) -> Path:
    """A split dataset of uniform [-1, 1] images: ``per_split`` samples in every split.

    Labels use the first few classes only (``kfedge.data.save_splits`` stratifies by label);
    the dataset still declares all ``s.classes`` classes, as the model's head has.
    """
    from kfedge.data import save_splits

    n_labels = min(s.classes, 4)
    n = 4 * max(per_split, n_labels)  # 1/2 train, 1/4 calibration, 1/4 eval
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, *s.input_shape)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % n_labels
    classes = [str(i) for i in range(s.classes)]
    save_splits(out, x, y, classes, f"random {s.key}", fractions=(0.5, 0.25, 0.25))
    return out


def prepare(s: ModelSpec, work: Path, per_split: int) -> dict[str, Any]:
    """Build (or reuse) the model and its random dataset under ``work``.

    Returns:
        ``{"keras": path, "dataset": dir, "params": count}``.
    """
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{s.key}.keras"
    data = work / "random-dataset"
    params_file = work / "params.txt"
    if path.is_file() and (data / "dataset.json").is_file() and params_file.is_file():
        return {"keras": path, "dataset": data, "params": int(params_file.read_text())}
    params = build(s, path)
    random_dataset(s, data, per_split)
    params_file.write_text(str(params))
    return {"keras": path, "dataset": data, "params": params}
