"""``tune-openvino-int8``: a bounded search over NNCF INT8 settings for OpenVINO."""

from __future__ import annotations

from typing import Any

from kfedge.techniques._tune import TuneConfig, TuneTechnique


class TuneOpenVinoInt8(
    TuneTechnique, name="tune-openvino-int8", output_format="openvino", family=None, rank=88
):
    """Bounded search over NNCF INT8 settings for OpenVINO, the fastest accurate one kept.

    Starts from openvino-int8's defaults; when a variant loses accuracy on the calibration
    split it tries the first layer, then the first and last, in float, the mixed preset and
    NNCF's accuracy-aware mode. Each accurate variant is timed against the FP32 IR in a quick
    side-by-side check, within a time budget.
    """

    inner = "openvino-int8"
    reference = "fp32-openvino"
    Config = TuneConfig

    def variants(self, cfg: TuneConfig) -> list[dict[str, Any]]:
        """openvino-int8's defaults (performance preset, full bias correction)."""
        return [{}]

    def rescues(self, cfg: TuneConfig) -> list[dict[str, Any]]:
        """Layers in float, the mixed preset, then NNCF's accuracy-aware mode."""
        return [
            {"keep_float": "first"},
            {"keep_float": "first_last"},
            {"preset": "mixed"},
            {"max_accuracy_drop": max(cfg.max_accuracy_drop, 0.001)},
        ]
