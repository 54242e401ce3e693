"""``prune-cluster-int8``: prune -> sparsity-preserving cluster -> full-integer PTQ INT8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge.candidate import Candidate
from kfedge.techniques import _chain
from kfedge.techniques._base import Source

NAME = "prune-cluster-int8"
DESCRIPTION = (
    "Deep-compression chain: magnitude pruning, sparsity-preserving clustering, then "
    "full-integer INT8 calibrated on the calibration split."
)
NEEDS_DATA = True


class Config(_chain.PruneStage, _chain.ClusterStage):
    """Parameters of ``prune-cluster-int8`` (pruning and clustering stages, INT8 export)."""

    calibration_samples: int = Field(default=256, ge=1, le=100_000)


def own_name(cfg: Config) -> str:
    """e.g. ``prune50-cluster16-int8``."""
    return f"prune{cfg.prune_tag()}-cluster{cfg.number_of_clusters}-int8"


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse non tf_keras models and a dataset without train + calibration splits."""
    _chain.check(src, data, NAME)


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Prune, cluster keeping the zeros, and quantize to INT8.

    Args:
        model_path: Candidate directory (its stripped Keras model) or tf_keras model file.
        data: Split dataset directory (train and calibration splits).
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write (``model.tflite`` + ``keras/model.keras``).

    Returns:
        The candidate (technique ``prune>cluster>ptq-int8``).
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
        steps="prune>cluster>ptq-int8",
        prune=True,
        cluster=True,
        qat=False,
        calibration_samples=cfg.calibration_samples,
    )
