"""``onnx-fp16``: ONNX float16 conversion with float32 inputs/outputs kept."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge import compat
from kfedge.candidate import Candidate
from kfedge.convert import write_atomic
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

NAME = "onnx-fp16"
DESCRIPTION = "ONNX float16 weights and compute (onnxruntime.transformers.float16), float32 IO."
NEEDS_DATA = False


class Config(TechniqueConfig):
    """Parameters of ``onnx-fp16``."""

    keep_io_types: bool = Field(
        default=True, description="Keep float32 inputs/outputs (callers still pass float32)."
    )
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
    """Convert the float tensors of an ONNX model to float16.

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
    onnx = compat.onnx()
    f16 = compat.require("onnxruntime.transformers.float16")
    t0 = time.perf_counter()
    with staging(out_dir) as work:
        scratch = work / ".work"
        scratch.mkdir()
        fp32 = _onnx.fp32_onnx(src, scratch, cfg.opset)
        try:
            model = f16.convert_float_to_float16(
                onnx.load(str(fp32)), keep_io_types=cfg.keep_io_types
            )
        except Exception as exc:  # onnx raises many types
            raise ModelFormatError(f"{NAME}: float16 conversion of {fp32} failed: {exc}") from exc
        write_atomic(work / "model.onnx", model.SerializeToString())
        shutil.rmtree(scratch)
        stats = {"initializer_dtypes": _onnx.initializer_dtypes(work / "model.onnx")}
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
