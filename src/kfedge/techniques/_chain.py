"""Shared parts of the chained techniques (prune / cluster / quantize in one step)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kfedge.candidate import Candidate
from kfedge.techniques import cluster as _cluster
from kfedge.techniques import prune as _prune
from kfedge.techniques import qat_int8 as _qat
from kfedge.techniques._base import (
    IoDtype,
    Source,
    TechniqueConfig,
    check_data,
    check_tf_keras,
    finish,
    load_tf_keras,
    resolve_source,
    sparsity_stats,
    staging,
    unique_stats,
    validate,
)


class ChainConfig(TechniqueConfig):
    """Fields every chain shares."""

    batch_size: int = Field(default=32, ge=1, le=4096)
    seed: int = Field(default=0, ge=0)
    io_dtype: IoDtype = Field(default="float32", description="INT8 model input/output type.")
    epochs: int | None = Field(
        default=None, ge=1, le=200, description="Epochs of every stage (overrides *_epochs)."
    )

    def stage_epochs(self, own: int) -> int:
        """The epochs of one stage: ``epochs`` when given, else the stage's own setting."""
        return self.epochs or own


class PruneStage(ChainConfig):
    """Fields of a chain's pruning stage."""

    target_sparsity: float = Field(default=0.5, gt=0.0, lt=1.0)
    sparsity_m_by_n: tuple[int, int] | None = None
    prune_epochs: int = Field(default=6, ge=1, le=200)
    prune_learning_rate: float = Field(default=3e-4, gt=0, le=0.1)

    def prune_config(self) -> _prune.Config:
        """The ``prune`` config of this stage."""
        return _prune.Config(
            target_sparsity=self.target_sparsity,
            sparsity_m_by_n=self.sparsity_m_by_n,
            epochs=self.stage_epochs(self.prune_epochs),
            learning_rate=self.prune_learning_rate,
            batch_size=self.batch_size,
            seed=self.seed,
        )

    def prune_tag(self) -> str:
        """``50`` or ``2by4``."""
        if self.sparsity_m_by_n:
            return f"{self.sparsity_m_by_n[0]}by{self.sparsity_m_by_n[1]}"
        return str(round(self.target_sparsity * 100))


class ClusterStage(ChainConfig):
    """Fields of a chain's clustering stage."""

    number_of_clusters: int = Field(default=16, ge=2, le=256)
    centroid_init: Literal["kmeans_plus_plus", "linear", "density_based"] = "kmeans_plus_plus"
    cluster_epochs: int = Field(default=5, ge=1, le=200)
    cluster_learning_rate: float = Field(default=1e-4, gt=0, le=0.1)

    def cluster_config(self) -> _cluster.Config:
        """The ``cluster`` config of this stage."""
        return _cluster.Config(
            number_of_clusters=self.number_of_clusters,
            centroid_init=self.centroid_init,
            epochs=self.stage_epochs(self.cluster_epochs),
            learning_rate=self.cluster_learning_rate,
            batch_size=self.batch_size,
            seed=self.seed,
        )


class QatStage(ChainConfig):
    """Fields of a chain's QAT stage."""

    qat_epochs: int = Field(default=3, ge=1, le=200)
    qat_learning_rate: float = Field(default=1e-4, gt=0, le=0.1)

    def qat_config(self) -> _qat.Config:
        """The ``qat-int8`` config of this stage."""
        return _qat.Config(
            epochs=self.stage_epochs(self.qat_epochs),
            learning_rate=self.qat_learning_rate,
            batch_size=self.batch_size,
            seed=self.seed,
            io_dtype=self.io_dtype,
        )


def check(src: Source, data: str | Path | None, purpose: str) -> None:
    """A chain needs a tf_keras model and the train + calibration splits."""
    check_tf_keras(src, purpose)
    check_data(data, ("train", "calibration"), f"{purpose} (fine-tuning)")


def run(
    name: str,
    model_path: str | Path,
    data: str | Path | None,
    config: Any,
    config_cls: type[ChainConfig],
    out_dir: str | Path,
    *,
    own_name: str,
    steps: str,
    prune: bool,
    cluster: bool,
    qat: bool,
    calibration_samples: int = 256,
) -> Candidate:
    """Run the stages of a chain from a file and write one candidate.

    Stages run in order prune -> cluster (sparsity-preserving after pruning) -> QAT with the
    matching collaborative scheme, or PTQ INT8 when ``qat`` is False. Only stripped models pass
    between stages.
    """
    cfg = validate(config_cls, config, name)
    src = resolve_source(model_path)
    check(src, data, name)
    t0 = time.perf_counter()
    data = Path(data)  # type: ignore[arg-type]
    model = load_tf_keras(src.path)
    stats: dict[str, Any] = {}
    tuned = 0.0
    pruned_layers: list[str] | None = None
    clustered_layers: list[str] | None = None
    if prune:
        res = _prune.prune_model(model, data, cfg.prune_config())
        model, pruned_layers = res.model, res.stats["pruned_layers"]
        stats["prune"] = res.stats
        tuned += res.stats["fine_tune_seconds"]
    if cluster:
        ccfg = cfg.cluster_config()
        preserve = prune or _cluster.is_pruned(src.parent_chain, model)
        cres = _cluster.cluster_model(model, data, ccfg, preserve)
        model, clustered_layers = cres.model, cres.stats["clustered_layers"]
        stats["cluster"] = cres.stats
        tuned += cres.stats["fine_tune_seconds"]
    stripped = model
    stats.update(sparsity_stats(stripped, pruned_layers))
    if clustered_layers is not None:
        stats.update(unique_stats(stripped, clustered_layers))
    with staging(out_dir) as work:
        if qat:
            preserve_q = _qat.resolve_preserve(
                "auto",
                ">".join(s for s, on in (("prune", prune), ("cluster", cluster)) if on),
                model,
            )
            qres = _qat.qat_model(model, data, cfg.qat_config(), preserve_q)
            stats["qat"] = qres.stats
            tuned += qres.stats["fine_tune_seconds"]
            stats.update(_qat.export(qres.model, work / "model.tflite", cfg.io_dtype))
            keras_file = None
        else:
            from kfedge.techniques._base import save_stripped

            keras_file = save_stripped(stripped, work)
            exp = _ExportCfg(cfg.io_dtype, calibration_samples)
            stats.update(_prune.export(stripped, work / "model.tflite", data, exp))
        stats["fine_tune_seconds"] = round(tuned, 2)
        return finish(
            work,
            src=src,
            own_name=own_name,
            steps=steps,
            config=cfg,
            model_file="model.tflite",
            stats=stats,
            keras_file=keras_file,
            started=t0,
        )


class _ExportCfg:
    """The export settings :func:`kfedge.techniques.prune.export` reads."""

    quantize = "int8"

    def __init__(self, io_dtype: str, calibration_samples: int) -> None:
        self.io_dtype = io_dtype
        self.calibration_samples = calibration_samples
