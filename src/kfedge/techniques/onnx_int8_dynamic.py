"""``onnx-int8-dynamic``: ONNX Runtime dynamic quantization (run-time activation ranges)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kfedge import compat
from kfedge.techniques._onnx import QUANT_TYPES, IsaConfig, OnnxTechnique, int8_settings


class Config(IsaConfig):
    """Parameters of ``onnx-int8-dynamic``."""

    weight_type: Literal["int8", "uint8"] = Field(
        default="uint8",
        description="Weight type; ONNX Runtime's CPU ConvInteger kernel takes uint8 weights.",
    )
    per_channel: bool = Field(default=False, description="Per-channel weight scales.")


class OnnxInt8Dynamic(OnnxTechnique, name="onnx-int8-dynamic", quant_mode="dynamic", rank=70):
    """ONNX Runtime dynamic quantization: 8-bit weights, activations quantized per run.

    ConvInteger / MatMulInteger; no calibration data.
    """

    Config = Config

    def rewrite(self, fp32: Path, out: Path, data: Path | None, cfg: Config) -> dict[str, Any]:
        """Quantize with ``onnxruntime.quantization.quantize_dynamic``."""
        q = compat.require("onnxruntime.quantization")
        settings = int8_settings(cfg)
        q.quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=getattr(q.QuantType, QUANT_TYPES[cfg.weight_type]),
            per_channel=cfg.per_channel,
            reduce_range=settings.reduce_range,
        )
        return {"int8_settings": settings.to_dict()}
