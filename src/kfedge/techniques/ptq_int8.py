"""``ptq-int8``: full-integer TFLite quantization calibrated on the calibration split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge.techniques._base import IoDtype, Source, TechniqueConfig, check_data, configure_int8
from kfedge.techniques._tflite import TfliteConversion


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


class PtqInt8(TfliteConversion, name="ptq-int8", quant_mode="int8", needs_data=True, rank=50):
    """Full-integer INT8 TFLite (weights and activations), calibrated on representative data.

    Integer IO for Edge TPU / NPUs.
    """

    Config = Config

    def own_name(self, cfg: Config) -> str:
        """``ptq-int8`` or ``ptq-int8-uint8io`` for integer IO."""
        return self.name if cfg.io_dtype == "float32" else f"{self.name}-{cfg.io_dtype}io"

    def check(self, src: Source, data: str | Path | None, cfg: Config) -> None:
        """Refuse TFLite / ONNX input and a missing calibration split."""
        super().check(src, data, cfg)
        check_data(data, ("calibration",), f"{self.name} (full-integer calibration)")

    def configure(self, conv: Any, cfg: Config, data: Path | None) -> dict[str, Any]:
        """Full-integer INT8, calibrated on the calibration split."""
        return configure_int8(
            conv, data, cfg.io_dtype, cfg.allow_float_fallback, cfg.calibration_samples
        )
