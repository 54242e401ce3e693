"""``fp32-tflite``: plain FP32 TFLite export, the baseline every TFLite candidate is compared to."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kfedge.formats import detect_format
from kfedge.techniques._base import Source
from kfedge.techniques._tflite import TfliteConversion


class Fp32Tflite(
    TfliteConversion,
    name="fp32-tflite",
    family="export_fp32",
    family_mode="tflite",
    group=None,
    rank=10,
):
    """FP32 TFLite export (no optimization), the TFLite reference."""

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Accept a Keras model / SavedModel, or a TFLite model (used as is); refuse the rest."""
        if detect_format(src.path) != "tflite":
            super().check(src, data, cfg)

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Convert without optimization; a TFLite model is already the reference: copied."""
        if detect_format(src.path) == "tflite":
            shutil.copyfile(src.path, work / self.model_file)
            return {"passthrough": True}
        return {"passthrough": False, **super().transform(src, data, cfg, work)}
