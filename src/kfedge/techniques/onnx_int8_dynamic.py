"""``onnx-int8-dynamic``: ONNX Runtime dynamic quantization (run-time activation ranges)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kfedge import compat
from kfedge.candidate import Candidate
from kfedge.errors import ModelFormatError
from kfedge.techniques import _onnx
from kfedge.techniques._base import (
    Source,
    TechniqueConfig,
    finish,
    resolve_source,
    staging,
    validate,
)

NAME = "onnx-int8-dynamic"
DESCRIPTION = (
    "ONNX Runtime dynamic quantization: 8-bit weights, activations quantized per run "
    "(ConvInteger / MatMulInteger); no calibration data."
)
NEEDS_DATA = False

_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


class Config(TechniqueConfig):
    """Parameters of ``onnx-int8-dynamic``."""

    weight_type: Literal["int8", "uint8"] = Field(
        default="uint8",
        description="Weight type; ONNX Runtime's CPU ConvInteger kernel takes uint8 weights.",
    )
    per_channel: bool = Field(default=False, description="Per-channel weight scales.")
    opset: int = Field(default=17, ge=13, le=21, description="Opset of the ONNX export.")


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse TFLite input."""
    _onnx.check_onnx_source(src, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Quantize with ``onnxruntime.quantization.quantize_dynamic``.

    Args:
        model_path: Candidate directory, ONNX model, or Keras model / SavedModel (exported).
        data: Unused.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write.

    Returns:
        The candidate (``model.onnx``).
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    q = compat.require("onnxruntime.quantization")
    t0 = time.perf_counter()
    with staging(out_dir) as work:
        scratch = work / ".work"
        scratch.mkdir()
        fp32 = _onnx.fp32_onnx(src, scratch, cfg.opset)
        try:
            q.quantize_dynamic(
                str(fp32),
                str(work / "model.onnx"),
                weight_type=getattr(q.QuantType, _TYPES[cfg.weight_type]),
                per_channel=cfg.per_channel,
            )
        except Exception as exc:  # ORT raises many types
            raise ModelFormatError(f"{NAME}: quantize_dynamic failed on {fp32}: {exc}") from exc
        shutil.rmtree(scratch)
        stats = {
            "op_counts": _onnx.op_counts(work / "model.onnx"),
            "initializer_dtypes": _onnx.initializer_dtypes(work / "model.onnx"),
        }
        return finish(
            work,
            src=src,
            own_name=NAME,
            steps=NAME,
            config=cfg,
            model_file="model.onnx",
            stats=stats,
            started=t0,
        )
