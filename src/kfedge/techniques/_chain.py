"""Chains: several tfmot stages in one technique (prune -> cluster -> QAT or PTQ INT8).

A chain declares its ``stages``, in order, from :data:`STAGES`; its parameter model is made of
the stages' fields (:data:`STAGE_CONFIGS`). Only stripped models pass between stages. The last
stage is the export: ``ptq-int8`` (calibrated full-integer) or ``qat`` (quantization-aware
fine-tune with the collaborative scheme that keeps the earlier stages' zeros / clusters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from kfedge.techniques import cluster as _cluster
from kfedge.techniques import prune as _prune
from kfedge.techniques import qat_int8 as _qat
from kfedge.techniques._base import (
    IoDtype,
    Source,
    TechniqueConfig,
    export_tflite,
    load_tunable,
    save_stripped,
    sparsity_stats,
    unique_stats,
)
from kfedge.techniques._tfmot import KerasTechnique


class ChainConfig(TechniqueConfig):
    """Fields every chain shares."""

    batch_size: int = Field(default=32, ge=1, le=4096)
    seed: int = Field(default=0, ge=0)
    io_dtype: IoDtype = Field(default="float32", description="INT8 model input/output type.")
    epochs: int | None = Field(
        default=None, ge=1, le=200, description="Epochs of every stage (overrides *_epochs)."
    )

    def stage_config(self, stage: str, cls: type[Any], *fields: str) -> Any:
        """The config of one stage's technique (``cls``), from this chain's fields.

        Args:
            stage: ``prune``, ``cluster`` or ``qat``: reads ``<stage>_epochs`` (unless
                ``epochs`` overrides every stage) and ``<stage>_learning_rate``.
            cls: The stage technique's config class.
            *fields: Fields passed on as they are.
        """
        return cls(
            epochs=self.epochs or getattr(self, f"{stage}_epochs"),
            learning_rate=getattr(self, f"{stage}_learning_rate"),
            batch_size=self.batch_size,
            seed=self.seed,
            **{f: getattr(self, f) for f in fields},
        )


class PruneStage(ChainConfig):
    """Fields of a chain's pruning stage."""

    target_sparsity: float = Field(default=0.5, gt=0.0, lt=1.0)
    sparsity_m_by_n: tuple[int, int] | None = None
    block_size: tuple[int, int] | None = Field(
        default=None, description="Block sparsity of the pruning stage, e.g. [1, 4]."
    )
    prune_epochs: int = Field(default=6, ge=1, le=200)
    prune_learning_rate: float = Field(default=3e-4, gt=0, le=0.1)

    def prune_config(self) -> _prune.Config:
        """The ``prune`` config of this stage."""
        return self.stage_config(
            "prune", _prune.Config, "target_sparsity", "sparsity_m_by_n", "block_size"
        )

    def prune_tag(self) -> str:
        """``50``, ``80-1x4`` (blocks) or ``2by4``."""
        return _prune.sparsity_tag(self)


class ClusterStage(ChainConfig):
    """Fields of a chain's clustering stage."""

    number_of_clusters: int = Field(default=16, ge=2, le=256)
    centroid_init: Literal["kmeans_plus_plus", "linear", "density_based"] = "kmeans_plus_plus"
    cluster_epochs: int = Field(default=5, ge=1, le=200)
    cluster_learning_rate: float = Field(default=1e-4, gt=0, le=0.1)

    def cluster_config(self) -> _cluster.Config:
        """The ``cluster`` config of this stage."""
        return self.stage_config("cluster", _cluster.Config, "number_of_clusters", "centroid_init")


class QatStage(ChainConfig):
    """Fields of a chain's QAT stage."""

    qat_epochs: int = Field(default=3, ge=1, le=200)
    qat_learning_rate: float = Field(default=1e-4, gt=0, le=0.1)

    def qat_config(self) -> _qat.Config:
        """The ``qat-int8`` config of this stage."""
        return self.stage_config("qat", _qat.Config, "io_dtype")


class Int8Stage(ChainConfig):
    """Fields of a chain's calibrated full-integer export."""

    calibration_samples: int = Field(default=256, ge=1, le=100_000)


Stage = Literal["prune", "cluster", "qat", "ptq-int8"]
#: Stage -> the fields it adds to a chain's parameters.
STAGE_CONFIGS: dict[str, type[ChainConfig]] = {
    "prune": PruneStage,
    "cluster": ClusterStage,
    "qat": QatStage,
    "ptq-int8": Int8Stage,
}


def _prune_stage(model: Any, data: Path, cfg: Any, src: Source, done: list[str]) -> Any:
    return _prune.prune_model(model, data, cfg.prune_config())


def _cluster_stage(model: Any, data: Path, cfg: Any, src: Source, done: list[str]) -> Any:
    preserve = "prune" in done or _cluster.is_pruned(src.parent_chain, model)
    return _cluster.cluster_model(model, data, cfg.cluster_config(), preserve)


#: The fine-tuning stages before the export: stage -> runner (model, data, config, source,
#: stages done) returning the stripped model and its stats (``.model``, ``.stats``).
STAGES = {"prune": _prune_stage, "cluster": _cluster_stage}


class Chain(KerasTechnique):
    """A technique made of stages; a subclass declares ``name``, ``stages`` and ``name_format``.

    Attributes:
        stages: The stages in order; the last one is ``qat`` or ``ptq-int8``.
        name_format: The candidate name, formatted with ``prune`` (``50`` / ``2by4``) and
            ``clusters`` (k).
    """

    quant_mode = "int8"
    stages: ClassVar[tuple[Stage, ...]] = ()
    name_format: ClassVar[str] = ""

    @classmethod
    def derive(cls) -> None:
        """Parameters from the stages' fields; QAT group when the export is QAT."""
        if "Config" not in cls.__dict__:
            doc = f"Parameters of ``{cls.name}``: its stages' fields."
            bases = tuple(STAGE_CONFIGS[s] for s in cls.stages)
            ns = {"__module__": cls.__module__, "__doc__": doc}
            cls.Config = type(f"{cls.__name__}Config", bases, ns)
        cls.purpose = cls.name
        cls.group = "QAT" if cls.stages[-1] == "qat" else "PTQ"

    def splits(self, cfg: Any) -> tuple[str, ...]:
        """A chain reads the train and calibration splits."""
        return ("train", "calibration")

    def own_name(self, cfg: Any) -> str:
        """:attr:`name_format` filled in (e.g. ``pcqat50-16-int8``)."""
        prune = cfg.prune_tag() if "prune" in self.stages else ""
        return self.name_format.format(prune=prune, clusters=getattr(cfg, "number_of_clusters", 0))

    def steps(self, cfg: Any) -> str:
        """The stages, the export named by the technique for QAT (``prune>cluster>pcqat-int8``)."""
        *tuned, last = self.stages
        return ">".join([*tuned, self.name if last == "qat" else last])

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Run the stages in order, then the export stage."""
        data = Path(data)  # type: ignore[arg-type]
        model, stats = load_tunable(src, data, self.name)
        *tuned, last = self.stages
        for i, stage in enumerate(tuned):
            res = STAGES[stage](model, data, cfg, src, tuned[:i])
            model, stats[stage] = res.model, res.stats
        seconds = sum(stats[s]["fine_tune_seconds"] for s in tuned)
        stats.update(sparsity_stats(model, stats.get("prune", {}).get("pruned_layers")))
        if "cluster" in stats:
            stats.update(unique_stats(model, stats["cluster"]["clustered_layers"]))
        out = work / self.model_file
        if last == "qat":
            preserve = _qat.resolve_preserve("auto", ">".join(tuned), model)
            qres = _qat.qat_model(model, data, cfg.qat_config(), preserve)
            stats["qat"] = qres.stats
            seconds += qres.stats["fine_tune_seconds"]
            stats.update(export_tflite(qres.model, out, "qat", io_dtype=cfg.io_dtype))
        else:
            save_stripped(model, work)
            stats.update(
                export_tflite(
                    model,
                    out,
                    "int8",
                    data=data,
                    io_dtype=cfg.io_dtype,
                    calibration_samples=cfg.calibration_samples,
                )
            )
        stats["fine_tune_seconds"] = round(seconds, 2)
        return stats
