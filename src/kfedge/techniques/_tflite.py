"""The TFLite converter family: techniques that are one ``TFLiteConverter`` configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge.convert import convert_tflite
from kfedge.techniques._base import Source, check_convertible
from kfedge.techniques._declare import Technique


class TfliteConversion(Technique):
    """A technique that converts a Keras model / SavedModel with a configured TFLite converter.

    A subclass declares itself and overrides :meth:`configure`.
    """

    output_format = "tflite"
    family = "quantize"
    group = "PTQ"

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Refuse inputs the TFLite converter cannot take (TFLite, ONNX)."""
        check_convertible(src, self.name)

    def configure(self, conv: Any, cfg: Any, data: Path | None) -> dict[str, Any]:
        """Set the converter up (optimizations, types); return stats of the setup."""
        return {}

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Convert ``src`` with the configured converter."""
        stats: dict[str, Any] = {}
        convert_tflite(
            src.path, work / self.model_file, lambda c: stats.update(self.configure(c, cfg, data))
        )
        return stats
