"""The tfmot family: techniques that fine-tune a tf_keras model and export it to TFLite.

A Keras 3 model is rebuilt in tf_keras first (:func:`._base.load_tunable`); the candidate's
``stats.keras_bridge`` records that rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from kfedge.techniques._base import (
    IoDtype,
    Source,
    TechniqueConfig,
    check_data,
    check_tf_keras,
    export_tflite,
    load_tunable,
    save_stripped,
)
from kfedge.techniques._declare import Technique


class ExportConfig(TechniqueConfig):
    """Fields of a technique whose stripped model is exported as FP32 or INT8 TFLite."""

    quantize: Literal["none", "int8"] = Field(
        default="none", description="Deployable file: FP32 TFLite, or full-integer INT8."
    )
    io_dtype: IoDtype = "float32"
    calibration_samples: int = Field(default=256, ge=1, le=100_000)

    @model_validator(mode="after")
    def _io_needs_int8(self) -> ExportConfig:
        if self.io_dtype != "float32" and self.quantize != "int8":
            raise ValueError("io_dtype int8/uint8 needs quantize: int8")
        return self


class KerasTechnique(Technique):
    """A technique that fine-tunes a tf_keras model (tfmot) on the train split.

    Attributes:
        purpose: What it does, for refusals ("pruning needs a tf_keras model...").
    """

    output_format = "tflite"
    needs_data = True
    fine_tunes = True
    purpose: ClassVar[str] = "fine-tuning"

    def splits(self, cfg: Any) -> tuple[str, ...]:
        """The dataset splits a run reads: train, and calibration for an INT8 export."""
        return ("train", "calibration") if getattr(cfg, "quantize", "") == "int8" else ("train",)

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Refuse non tf_keras models and a dataset without the splits the run needs."""
        check_tf_keras(src, self.purpose)
        check_data(data, self.splits(cfg), f"{self.purpose} (fine-tuning)")


class StrippedTechnique(KerasTechnique):
    """Fine-tune with wrappers, strip them, keep the stripped Keras model, export the TFLite.

    A subclass declares itself and overrides :meth:`tune` and :meth:`tag`.
    """

    def tune(self, model: Any, data: Path, cfg: Any, src: Source) -> tuple[Any, dict[str, Any]]:
        """Return the stripped, fine-tuned model and the stats of the run."""
        raise NotImplementedError

    def tag(self, cfg: Any) -> str:
        """The candidate name without the ``-int8`` suffix (e.g. ``prune-50``)."""
        return self.name

    def own_name(self, cfg: Any) -> str:
        """:meth:`tag`, with ``-int8`` for an INT8 deployable."""
        return f"{self.tag(cfg)}-int8" if cfg.quantize == "int8" else self.tag(cfg)

    def steps(self, cfg: Any) -> str:
        """``prune``, or ``prune>ptq-int8`` for an INT8 deployable."""
        return f"{self.name}>ptq-int8" if cfg.quantize == "int8" else self.name

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Tune (a Keras 3 model rebuilt first), save the stripped model, export it."""
        model, bridged = load_tunable(src, data, self.purpose)
        model, stats = self.tune(model, data, cfg, src)  # type: ignore[arg-type]
        save_stripped(model, work)
        return {
            **bridged,
            **stats,
            **export_tflite(
                model,
                work / self.model_file,
                cfg.quantize,
                data=data,
                io_dtype=cfg.io_dtype,
                calibration_samples=cfg.calibration_samples,
            ),
        }
