"""``cqat-int8``: cluster -> cluster-preserving quantization-aware training (CQAT) -> INT8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge.candidate import Candidate
from kfedge.techniques import _chain
from kfedge.techniques._base import Source

NAME = "cqat-int8"
DESCRIPTION = (
    "Weight clustering, then QAT with tfmot's Default8BitClusterPreserveQuantizeScheme so the "
    "clusters survive quantization; full-integer INT8 TFLite."
)
NEEDS_DATA = True


class Config(_chain.ClusterStage, _chain.QatStage):
    """Parameters of ``cqat-int8`` (clustering and QAT stages)."""


def own_name(cfg: Config) -> str:
    """e.g. ``cqat16-int8``."""
    return f"cqat{cfg.number_of_clusters}-int8"


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse non tf_keras models and a dataset without train + calibration splits."""
    _chain.check(src, data, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Cluster, then cluster-preserving QAT, then INT8 export.

    Args:
        model_path: Candidate directory (its stripped Keras model) or tf_keras model file.
        data: Split dataset directory.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write (``model.tflite``).

    Returns:
        The candidate (technique ``cluster>cqat-int8``).
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
        steps="cluster>cqat-int8",
        prune=False,
        cluster=True,
        qat=True,
    )
