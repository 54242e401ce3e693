"""``ptq-int8``: full-integer TFLite quantization calibrated on the calibration split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge.candidate import Candidate
from kfedge.convert import convert_tflite
from kfedge.techniques._base import (
    IoDtype,
    Source,
    TechniqueConfig,
    check_convertible,
    check_data,
    configure_int8,
    finish,
    resolve_source,
    staging,
    tflite_stats,
    validate,
)

NAME = "ptq-int8"
DESCRIPTION = (
    "Full-integer INT8 TFLite (weights and activations), calibrated with a representative "
    "dataset; integer IO for Edge TPU / NPUs."
)
NEEDS_DATA = True


class Config(TechniqueConfig):
    """Parameters of ``ptq-int8``."""

    io_dtype: IoDtype = Field(
        default="float32",
        description="Model input/output type: float32, or int8/uint8 for Edge TPU / NPU IO.",
    )
    allow_float_fallback: bool = Field(
        default=False,
        description="Let ops without an INT8 kernel stay float (else conversion fails on them).",
    )
    calibration_samples: int = Field(
        default=256, ge=1, le=100_000, description="Calibration samples (from the split)."
    )


def own_name(cfg: Config) -> str:
    """``ptq-int8`` or ``ptq-int8-uint8io`` for integer IO."""
    return NAME if cfg.io_dtype == "float32" else f"{NAME}-{cfg.io_dtype}io"


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse TFLite / ONNX input and a missing calibration split."""
    check_convertible(src, NAME)
    check_data(data, ("calibration",), f"{NAME} (full-integer calibration)")


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Quantize weights and activations to INT8, calibrating on the calibration split.

    Args:
        model_path: Candidate directory or Keras / SavedModel (Keras 3 accepted).
        data: Split dataset directory with a calibration split.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write.

    Returns:
        The candidate (``model.tflite``).
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    t0 = time.perf_counter()
    stats: dict[str, Any] = {}

    def configure(conv: Any) -> None:
        stats.update(
            configure_int8(
                conv, Path(data), cfg.io_dtype, cfg.allow_float_fallback, cfg.calibration_samples
            )
        )

    with staging(out_dir) as work:
        convert_tflite(src.path, work / "model.tflite", configure)
        stats.update(tflite_stats(work / "model.tflite"))
        return finish(
            work,
            src=src,
            own_name=own_name(cfg),
            steps=NAME,
            config=cfg,
            model_file="model.tflite",
            stats=stats,
            started=t0,
        )
