"""``pcqat-int8``: prune -> sparsity-preserving cluster -> PCQAT (zeros and clusters kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge.candidate import Candidate
from kfedge.techniques import _chain
from kfedge.techniques._base import Source

NAME = "pcqat-int8"
DESCRIPTION = (
    "Pruning, sparsity-preserving clustering, then QAT with "
    "Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True); INT8 TFLite."
)
NEEDS_DATA = True


class Config(_chain.PruneStage, _chain.ClusterStage, _chain.QatStage):
    """Parameters of ``pcqat-int8`` (pruning, clustering and QAT stages)."""


def own_name(cfg: Config) -> str:
    """e.g. ``pcqat50-16-int8``."""
    return f"pcqat{cfg.prune_tag()}-{cfg.number_of_clusters}-int8"


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse non tf_keras models and a dataset without train + calibration splits."""
    _chain.check(src, data, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Prune, cluster keeping zeros, then PCQAT, then INT8 export.

    Args:
        model_path: Candidate directory (its stripped Keras model) or tf_keras model file.
        data: Split dataset directory.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write (``model.tflite``).

    Returns:
        The candidate (technique ``prune>cluster>pcqat-int8``).
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
        steps="prune>cluster>pcqat-int8",
        prune=True,
        cluster=True,
        qat=True,
    )
