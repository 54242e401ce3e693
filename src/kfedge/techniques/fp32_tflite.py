"""``fp32-tflite``: plain FP32 TFLite export, the baseline every TFLite candidate is compared to."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from kfedge.candidate import Candidate
from kfedge.convert import convert_tflite
from kfedge.formats import detect_format
from kfedge.techniques._base import (
    Source,
    TechniqueConfig,
    check_convertible,
    finish,
    resolve_source,
    staging,
    tflite_stats,
    validate,
)

NAME = "fp32-tflite"
DESCRIPTION = "FP32 TFLite export (no optimization), the TFLite reference."
NEEDS_DATA = False


class Config(TechniqueConfig):
    """``fp32-tflite`` takes no parameters besides ``name``."""


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Accept a Keras model / SavedModel, or a tflite model (used as is); refuse the rest."""
    if detect_format(src.path) != "tflite":
        check_convertible(src, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Export the model to FP32 TFLite.

    Args:
        model_path: Candidate directory, Keras / SavedModel (Keras 3 accepted), or a
            TFLite model (copied as is).
        data: Unused.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write.

    Returns:
        The candidate (``model.tflite``).
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    t0 = time.perf_counter()
    with staging(out_dir) as work:
        stats: dict[str, Any] = {"passthrough": detect_format(src.path) == "tflite"}
        if stats["passthrough"]:  # already the reference format: the reference is the model
            shutil.copyfile(src.path, work / "model.tflite")
        else:
            convert_tflite(src.path, work / "model.tflite")
        return finish(
            work,
            src=src,
            own_name=NAME,
            steps=NAME,
            config=cfg,
            model_file="model.tflite",
            stats={**stats, **tflite_stats(work / "model.tflite")},
            started=t0,
        )
