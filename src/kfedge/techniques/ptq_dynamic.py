"""``ptq-dynamic``: TFLite dynamic-range quantization (int8 weights, float activations)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kfedge import compat
from kfedge.candidate import Candidate
from kfedge.convert import convert_tflite
from kfedge.techniques._base import (
    Source,
    TechniqueConfig,
    check_convertible,
    finish,
    resolve_source,
    staging,
    tflite_stats,
    validate,
)

NAME = "ptq-dynamic"
DESCRIPTION = "TFLite dynamic-range quantization: int8 weights, float activations, no data."
NEEDS_DATA = False


class Config(TechniqueConfig):
    """``ptq-dynamic`` takes no parameters besides ``name``."""


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse inputs the TFLite converter cannot take (TFLite, ONNX)."""
    check_convertible(src, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Quantize the weights to int8 with the TFLite converter's dynamic-range mode.

    Args:
        model_path: Candidate directory or Keras / SavedModel (Keras 3 accepted).
        data: Unused (dynamic range needs no calibration).
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write.

    Returns:
        The candidate (``model.tflite``).
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    t0 = time.perf_counter()

    def configure(conv: Any) -> None:
        conv.optimizations = [compat.tf().lite.Optimize.DEFAULT]

    with staging(out_dir) as work:
        convert_tflite(src.path, work / "model.tflite", configure)
        return finish(
            work,
            src=src,
            own_name=NAME,
            steps=NAME,
            config=cfg,
            model_file="model.tflite",
            stats=tflite_stats(work / "model.tflite"),
            started=t0,
        )
