"""``tune-onnx-int8``: a bounded search over ONNX Runtime static INT8 settings."""

from __future__ import annotations

from typing import Any

from kfedge.cpu import Isa, parse_isa
from kfedge.techniques._tune import TuneConfig, TuneTechnique


class TuneOnnxInt8(
    TuneTechnique, name="tune-onnx-int8", output_format="onnx", family=None, rank=86
):
    """Bounded search over ONNX Runtime static INT8 settings, the fastest accurate one kept.

    Tries QDQ / QOperator, per-channel or per-tensor weights, the offline-optimized graph and,
    on x86 without VNNI, uint8 weights; first / last layer in float or percentile calibration
    when accuracy needs them. Each variant is checked for accuracy on the calibration split and
    timed against FP32 ONNX in a quick side-by-side check, within a time budget.
    """

    inner = "onnx-int8-static"
    Config = TuneConfig

    def variants(self, cfg: TuneConfig) -> list[dict[str, Any]]:
        """Defaults first, then format, weight granularity, offline graph, weight type."""
        out: list[dict[str, Any]] = [
            {},
            {"quant_format": "qoperator"},
            {"per_channel": False},
            {"optimize": "extended"},
        ]
        isa = parse_isa(cfg.isa) if cfg.isa else Isa("x86-64")
        if isa.arch == "x86-64" and not isa.vnni:
            out.append({"weight_type": "uint8"})  # U8U8: 8-bit weights without saturation
        return out

    def rescues(self, cfg: TuneConfig) -> list[dict[str, Any]]:
        """First and last layer in float, then percentile calibration."""
        return [{"keep_float": "first_last"}, {"calibrate_method": "percentile"}]
