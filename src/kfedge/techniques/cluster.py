"""``cluster``: weight clustering (tfmot ``cluster_weights``) to k shared values per kernel.

apply -> fine-tune -> ``strip_clustering`` -> export. As TFMOT advises, the first conv and the
last dense layer stay unclustered by default (they are small and sensitive). When the input
is pruned (its chain contains ``prune``, or its kernels are at least 30 % zeros), clustering
preserves the zeros with tfmot's sparsity-preserving clustering.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field, model_validator

from kfedge import compat
from kfedge.candidate import Candidate
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques import prune as _prune
from kfedge.techniques._base import (
    FineTuneConfig,
    IoDtype,
    Source,
    check_data,
    check_tf_keras,
    fine_tune,
    finish,
    kernel_attr,
    load_tf_keras,
    max_output_diff,
    measured_sparsity,
    resolve_source,
    save_stripped,
    sparsity_stats,
    staging,
    unique_stats,
    validate,
)

NAME = "cluster"
DESCRIPTION = (
    "Weight clustering to k centroids per kernel (k-means++), sparsity-preserving on pruned "
    "models, fine-tuned, stripped; deployable as FP32 or INT8 TFLite."
)
NEEDS_DATA = True

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


class Config(FineTuneConfig):
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
    quantize: Literal["none", "int8"] = "none"
    io_dtype: IoDtype = "float32"
    calibration_samples: int = Field(default=256, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.io_dtype != "float32" and self.quantize != "int8":
            raise ValueError("io_dtype int8/uint8 needs quantize: int8")
        return self


def own_name(cfg: Config) -> str:
    """``cluster-16`` (``-int8`` for an INT8 deployable)."""
    base = f"cluster-{cfg.number_of_clusters}"
    return f"{base}-int8" if cfg.quantize == "int8" else base


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse non tf_keras models and a dataset without the splits the run needs."""
    check_tf_keras(src, "clustering")
    splits = ("train", "calibration") if cfg.quantize == "int8" else ("train",)
    check_data(data, splits, "clustering (fine-tuning)")


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


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Cluster, fine-tune, strip, and export a tf_keras model.

    Args:
        model_path: Candidate directory (its stripped Keras model) or tf_keras model file.
        data: Split dataset directory (train; calibration for ``quantize: int8``).
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write (``model.tflite`` + ``keras/model.keras``).

    Returns:
        The candidate.
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    t0 = time.perf_counter()
    data = Path(data)  # type: ignore[arg-type]
    model = load_tf_keras(src.path)
    preserve = cfg.preserve_sparsity
    if preserve is None:
        preserve = is_pruned(src.parent_chain, model)
    res = cluster_model(model, data, cfg, preserve)
    with staging(out_dir) as work:
        keras_file = save_stripped(res.model, work)
        stats = {**res.stats, **_prune.export(res.model, work / "model.tflite", data, cfg)}
        steps = "cluster>ptq-int8" if cfg.quantize == "int8" else "cluster"
        return finish(
            work,
            src=src,
            own_name=own_name(cfg),
            steps=steps,
            config=cfg,
            model_file="model.tflite",
            stats=stats,
            keras_file=keras_file,
            started=t0,
        )
