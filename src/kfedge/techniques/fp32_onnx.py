"""``fp32-onnx``: plain FP32 ONNX export (tf2onnx), the reference of the ONNX candidates."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge.candidate import Candidate
from kfedge.convert import convert_onnx
from kfedge.formats import detect_format
from kfedge.techniques._base import (
    Source,
    TechniqueConfig,
    check_convertible,
    finish,
    resolve_source,
    staging,
    validate,
)

NAME = "fp32-onnx"
DESCRIPTION = "FP32 ONNX export with tf2onnx (SavedModel path), the ONNX reference."
NEEDS_DATA = False


class Config(TechniqueConfig):
    """Parameters of ``fp32-onnx``."""

    opset: int = Field(default=17, ge=13, le=21, description="ONNX opset.")


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Accept a Keras model / SavedModel, or a onnx model (used as is); refuse the rest."""
    if detect_format(src.path) != "onnx":
        check_convertible(src, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Export the model to ONNX.

    Args:
        model_path: Candidate directory, Keras / SavedModel (Keras 3 accepted), or a
            ONNX model (copied as is).
        data: Unused.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write.

    Returns:
        The candidate (``model.onnx``).
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    t0 = time.perf_counter()
    with staging(out_dir) as work:
        stats: dict[str, Any] = {"passthrough": detect_format(src.path) == "onnx"}
        if stats["passthrough"]:  # already the reference format: the reference is the model
            shutil.copyfile(src.path, work / "model.onnx")
        else:
            convert_onnx(src.path, work / "model.onnx", cfg.opset)
        return finish(
            work,
            src=src,
            own_name=NAME,
            steps=NAME,
            config=cfg,
            model_file="model.onnx",
            stats={**stats, "opset": None if stats["passthrough"] else cfg.opset},
            started=t0,
        )
