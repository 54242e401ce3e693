"""``ptq-dynamic``: TFLite dynamic-range quantization (int8 weights, float activations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge import compat
from kfedge.techniques._tflite import TfliteConversion


class PtqDynamic(TfliteConversion, name="ptq-dynamic", quant_mode="dynamic", rank=30):
    """TFLite dynamic-range quantization: int8 weights, float activations, no data."""

    def configure(self, conv: Any, cfg: Any, data: Path | None) -> dict[str, Any]:
        """Quantize the weights with the converter's default (dynamic-range) optimization."""
        conv.optimizations = [compat.tf().lite.Optimize.DEFAULT]
        return {}
