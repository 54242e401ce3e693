"""``onnx-int8-static``: ONNX Runtime static INT8 quantization (QDQ or QOperator), calibrated."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kfedge import compat
from kfedge.failure import one_line
from kfedge.techniques._base import Source, check_data
from kfedge.techniques._onnx import (
    QUANT_TYPES,
    IsaConfig,
    OnnxTechnique,
    calibration_reader,
    int8_settings,
    kept_float,
    optimize_offline,
)

_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_FORMATS = {"qdq": "QDQ", "qoperator": "QOperator"}


class Config(IsaConfig):
    """Parameters of ``onnx-int8-static``."""

    per_channel: bool = Field(default=True, description="Per-channel weight scales.")
    calibrate_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="How activation ranges are calibrated."
    )
    activation_type: Literal["int8", "uint8"] = Field(
        default="uint8", description="Activation integer type."
    )
    weight_type: Literal["int8", "uint8"] = Field(default="int8", description="Weight type.")
    calibration_samples: int = Field(default=256, ge=1, le=100_000)
    preprocess: bool = Field(
        default=True, description="Run ORT's quant_pre_process (shape inference, fusions) first."
    )
    quant_format: Literal["qdq", "qoperator"] = Field(
        default="qdq",
        description="qdq: QuantizeLinear / DequantizeLinear pairs around float ops (ONNX "
        "Runtime fuses them when it loads the model); qoperator: QLinearConv-style ops.",
    )
    keep_float: Literal["none", "first", "last", "first_last"] = Field(
        default="none",
        description="Leave the first / last weighted node (Conv, MatMul, Gemm) in float "
        "(nodes_to_exclude).",
    )
    optimize: Literal["none", "basic", "extended"] = Field(
        default="none",
        description="Save ONNX Runtime's graph-optimized model (basic / extended; not 'all', "
        "whose layout changes are specific to the CPU that made them).",
    )


class OnnxInt8Static(
    OnnxTechnique, name="onnx-int8-static", quant_mode="int8", needs_data=True, rank=60
):
    """ONNX Runtime static INT8 quantization (QDQ / QOperator), calibrated on the calibration split.

    Per-channel weights by default; 7-bit weights where the target CPU may lack VNNI; optional
    first / last layer in float and an offline graph-optimized model.
    """

    Config = Config

    def check(self, src: Source, data: str | Path | None, cfg: Config) -> None:
        """Refuse TFLite input and a missing calibration split."""
        super().check(src, data, cfg)
        check_data(data, ("calibration",), f"{self.name} (static calibration)")

    def rewrite(self, fp32: Path, out: Path, data: Path | None, cfg: Config) -> dict[str, Any]:
        """Quantize with ``onnxruntime.quantization.quantize_static``, then optimize offline."""
        q = compat.require("onnxruntime.quantization")
        stats: dict[str, Any] = {"preprocessed": False}
        source = fp32
        if cfg.preprocess:
            pre = fp32.parent / "pre.onnx"
            try:
                q.quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
                source, stats["preprocessed"] = pre, True
            except Exception as exc:  # ORT raises many types; quantization still works without
                warning = f"quant_pre_process failed, quantized without it: {one_line(exc)}"
                stats.setdefault("warnings", []).append(warning)  # the report lists them
                print(f"[kfedge] {self.name}: {warning}", file=sys.stderr)
        # ORT's histogram collector (entropy, percentile) stacks the batches it saw: a shorter
        # last batch breaks it, so those methods calibrate sample by sample
        batch = 16 if cfg.calibrate_method == "minmax" else 1
        reader = calibration_reader(source, Path(data), cfg.calibration_samples, batch)  # type: ignore[arg-type]
        settings = int8_settings(cfg)
        excluded = kept_float(source, cfg.keep_float)
        quantized = out if cfg.optimize == "none" else fp32.parent / "quantized.onnx"
        q.quantize_static(
            str(source),
            str(quantized),
            reader,
            quant_format=getattr(q.QuantFormat, _FORMATS[cfg.quant_format]),
            per_channel=cfg.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=getattr(q.QuantType, QUANT_TYPES[cfg.activation_type]),
            weight_type=getattr(q.QuantType, QUANT_TYPES[cfg.weight_type]),
            calibrate_method=getattr(q.CalibrationMethod, _METHODS[cfg.calibrate_method]),
            nodes_to_exclude=excluded or None,
        )
        if cfg.optimize != "none":
            stats["offline_optimization"] = optimize_offline(quantized, out, cfg.optimize)
        return {
            **stats,
            "calibration_samples": reader.count,
            "int8_settings": settings.to_dict(),
            "quant_format": cfg.quant_format,
            "kept_float": excluded,
        }
