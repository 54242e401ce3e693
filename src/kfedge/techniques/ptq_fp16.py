"""``ptq-fp16``: TFLite float16 quantization (weights stored as float16)."""

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

NAME = "ptq-fp16"
DESCRIPTION = "TFLite float16 weights (half the size, GPU delegates run them natively)."
NEEDS_DATA = False


class Config(TechniqueConfig):
    """``ptq-fp16`` takes no parameters besides ``name``."""


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse inputs the TFLite converter cannot take (TFLite, ONNX)."""
    check_convertible(src, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Store the weights as float16 with the TFLite converter.

    Args:
        model_path: Candidate directory or Keras / SavedModel (Keras 3 accepted).
        data: Unused.
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
        tf = compat.tf()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]

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
