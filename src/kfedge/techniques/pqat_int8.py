"""``pqat-int8``: prune -> pruning-preserving quantization-aware training (PQAT) -> INT8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge.candidate import Candidate
from kfedge.techniques import _chain
from kfedge.techniques._base import Source

NAME = "pqat-int8"
DESCRIPTION = (
    "Magnitude pruning, then QAT with tfmot's Default8BitPrunePreserveQuantizeScheme so the "
    "zeros survive quantization; full-integer INT8 TFLite."
)
NEEDS_DATA = True


class Config(_chain.PruneStage, _chain.QatStage):
    """Parameters of ``pqat-int8`` (pruning and QAT stages)."""


def own_name(cfg: Config) -> str:
    """e.g. ``pqat50-int8``."""
    return f"pqat{cfg.prune_tag()}-int8"


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse non tf_keras models and a dataset without train + calibration splits."""
    _chain.check(src, data, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Prune, then pruning-preserving QAT, then INT8 export.

    Args:
        model_path: Candidate directory (its stripped Keras model) or tf_keras model file.
        data: Split dataset directory.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write (``model.tflite``).

    Returns:
        The candidate (technique ``prune>pqat-int8``).
    """
    cfg = _chain.validate(Config, config, NAME)
    return _chain.run(
        NAME,
        model_path,
        data,
        cfg,
        Config,
        out_dir,
        own_name=own_name(cfg),
        steps="prune>pqat-int8",
        prune=True,
        cluster=False,
        qat=True,
    )
