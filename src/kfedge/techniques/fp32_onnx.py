"""``fp32-onnx``: plain FP32 ONNX export (tf2onnx), the reference of the ONNX candidates."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kfedge.convert import convert_onnx
from kfedge.formats import detect_format
from kfedge.techniques._base import Source, check_convertible
from kfedge.techniques._onnx import OnnxTechnique


class Fp32Onnx(
    OnnxTechnique, name="fp32-onnx", family="export_fp32", family_mode="onnx", group=None, rank=20
):
    """FP32 ONNX export with tf2onnx (SavedModel path), the ONNX reference."""

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Accept a Keras model / SavedModel, or an ONNX model (used as is); refuse the rest."""
        if detect_format(src.path) != "onnx":
            check_convertible(src, self.name)

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Export with tf2onnx; an ONNX model is already the reference: copied."""
        if detect_format(src.path) == "onnx":
            shutil.copyfile(src.path, work / self.model_file)
            return {"passthrough": True, "opset": None}
        convert_onnx(src.path, work / self.model_file, cfg.opset)
        return {"passthrough": False, "opset": cfg.opset}
