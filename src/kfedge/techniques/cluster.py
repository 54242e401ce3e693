"""``cluster``: weight clustering (tfmot ``cluster_weights``) to k shared values per kernel.

apply -> fine-tune -> ``strip_clustering`` -> export. As TFMOT advises, the first conv and the
last dense layer stay unclustered by default (they are small and sensitive). When the input
is pruned (its chain contains ``prune``, or its kernels are at least 30 % zeros), clustering
preserves the zeros with tfmot's sparsity-preserving clustering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field

from kfedge import compat
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques._base import (
    FineTuneConfig,
    Source,
    fine_tune,
    kernel_attr,
    max_output_diff,
    measured_sparsity,
    sparsity_stats,
    unique_stats,
)
from kfedge.techniques._tfmot import ExportConfig, StrippedTechnique

#: Layers whose kernels tfmot clusters (its registry lists DepthwiseConv2D with no clusterable
#: weights, so depthwise kernels keep their values).
_CLUSTERABLE = ("Conv2D", "Dense")
_INIT = {
    "kmeans_plus_plus": "KMEANS_PLUS_PLUS",
    "linear": "LINEAR",
    "density_based": "DENSITY_BASED",
}
#: Kernel sparsity above which an input counts as pruned.
PRUNED_THRESHOLD = 0.3


class Config(FineTuneConfig, ExportConfig):
    """Parameters of ``cluster``."""

    epochs: int = Field(default=5, ge=1, le=200)
    learning_rate: float = Field(default=1e-4, gt=0, le=0.1)
    number_of_clusters: int = Field(default=16, ge=2, le=256, description="Centroids (k).")
    centroid_init: Literal["kmeans_plus_plus", "linear", "density_based"] = "kmeans_plus_plus"
    preserve_sparsity: bool | None = Field(
        default=None, description="Keep zeros zero; default: when the input is pruned."
    )
    skip_layers: list[str] | None = Field(
        default=None, description="Layers left unclustered; default: first conv and last dense."
    )


class Clustered(NamedTuple):
    """Result of :func:`cluster_model`."""

    model: Any
    wrapped: Any
    stats: dict[str, Any]


def default_skip(model: Any) -> list[str]:
    """The first and the last layer with a kernel (TFMOT: leave them unclustered)."""
    with_kernel = [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in _CLUSTERABLE and kernel_attr(layer)
    ]
    return sorted({with_kernel[0], with_kernel[-1]}) if with_kernel else []


def is_pruned(src_chain: str, model: Any) -> bool:
    """Whether a model counts as pruned: chain says so, or its kernels are >= 30 % zeros."""
    return "prune" in src_chain.split(">") or measured_sparsity(model) >= PRUNED_THRESHOLD


def cluster_model(model: Any, data: Path, cfg: Config, preserve_sparsity: bool) -> Clustered:
    """Wrap the clusterable layers, fine-tune, strip.

    Args:
        model: A built tf_keras functional / sequential model.
        data: Split dataset directory (train split).
        cfg: Clustering parameters.
        preserve_sparsity: Use sparsity-preserving clustering (zeros stay zero).

    Returns:
        The stripped model, the wrapped model, and stats (unique values per kernel,
        sparsity, fine-tune time, max difference stripped vs wrapped).
    """
    tfmot = compat.tfmot()
    keras = compat.keras()
    ck = tfmot.clustering.keras
    exp = compat.require(
        "tensorflow_model_optimization.python.core.clustering.keras.experimental.cluster"
    )
    names = [layer.name for layer in model.layers]
    skip = default_skip(model) if cfg.skip_layers is None else list(cfg.skip_layers)
    unknown = [n for n in skip if n not in names]
    if unknown:
        raise ConfigError(f"cluster: skip_layers {unknown} are not layers of the model {names}")
    init = getattr(ck.CentroidInitialization, _INIT[cfg.centroid_init])
    clustered: list[str] = []

    def wrap(layer: Any) -> Any:
        if type(layer).__name__ not in _CLUSTERABLE or layer.name in skip:
            return layer
        clustered.append(layer.name)
        if preserve_sparsity:
            return exp.cluster_weights(
                layer,
                number_of_clusters=cfg.number_of_clusters,
                cluster_centroids_init=init,
                preserve_sparsity=True,
            )
        return ck.cluster_weights(
            layer, number_of_clusters=cfg.number_of_clusters, cluster_centroids_init=init
        )

    try:
        wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise ModelFormatError(f"cluster: the model cannot be clustered: {exc}") from exc
    if not clustered:
        raise ModelFormatError(
            f"cluster: no layer to cluster ({', '.join(_CLUSTERABLE)}, minus skip_layers {skip})"
        )
    frozen: list[str] = []
    if preserve_sparsity:
        # Unclustered pruned kernels would regrow their zeros while fine-tuning: freeze them.
        for layer in wrapped.layers:
            attr = kernel_attr(layer) if type(layer).__name__ in _CLUSTERABLE else None
            if attr and np.mean(getattr(layer, attr).numpy() == 0) >= 0.1:
                layer.trainable = False
                frozen.append(layer.name)
    stats = fine_tune(wrapped, data, cfg)
    stats["frozen_layers"] = frozen
    stripped = ck.strip_clustering(wrapped)
    stats["strip_max_abs_diff"] = max_output_diff(wrapped, stripped, data)
    stats.update(unique_stats(stripped, clustered))
    stats.update(sparsity_stats(stripped, clustered))
    stats["clustered_layers"] = clustered
    stats["preserve_sparsity"] = preserve_sparsity
    return Clustered(stripped, wrapped, stats)


class Cluster(StrippedTechnique, name="cluster", family="cluster", purpose="clustering", rank=110):
    """Weight clustering to k centroids per kernel (k-means++).

    Sparsity-preserving on pruned models; fine-tuned, stripped; deployable as FP32 or INT8
    TFLite.
    """

    Config = Config

    def tag(self, cfg: Config) -> str:
        """``cluster-16``."""
        return f"cluster-{cfg.number_of_clusters}"

    def tune(self, model: Any, data: Path, cfg: Config, src: Source) -> tuple[Any, dict[str, Any]]:
        """Cluster (keeping zeros when the input is pruned), fine-tune, strip."""
        preserve = cfg.preserve_sparsity
        if preserve is None:
            preserve = is_pruned(src.parent_chain, model)
        res = cluster_model(model, data, cfg, preserve)
        return res.model, res.stats
