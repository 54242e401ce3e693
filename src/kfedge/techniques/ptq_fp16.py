"""``ptq-fp16``: TFLite float16 quantization (weights stored as float16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge import compat
from kfedge.techniques._tflite import TfliteConversion


class PtqFp16(TfliteConversion, name="ptq-fp16", quant_mode="fp16", rank=40):
    """TFLite float16 weights (half the size, GPU delegates run them natively)."""

    def configure(self, conv: Any, cfg: Any, data: Path | None) -> dict[str, Any]:
        """Store the weights as float16."""
        tf = compat.tf()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
        return {}
