"""``onnx-fp16``: ONNX float16 conversion with float32 inputs/outputs kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge import compat
from kfedge.fsutil import write_atomic
from kfedge.techniques._onnx import OnnxConfig, OnnxTechnique


class Config(OnnxConfig):
    """Parameters of ``onnx-fp16``."""

    keep_io_types: bool = Field(
        default=True, description="Keep float32 inputs/outputs (callers still pass float32)."
    )


class OnnxFp16(OnnxTechnique, name="onnx-fp16", quant_mode="fp16", rank=80):
    """ONNX float16 weights and compute (onnxruntime.transformers.float16), float32 IO."""

    Config = Config

    def rewrite(self, fp32: Path, out: Path, data: Path | None, cfg: Config) -> dict[str, Any]:
        """Convert the float tensors to float16."""
        f16 = compat.require("onnxruntime.transformers.float16")
        model = f16.convert_float_to_float16(
            compat.onnx().load(str(fp32)), keep_io_types=cfg.keep_io_types
        )
        write_atomic(out, model.SerializeToString())
        return {}
