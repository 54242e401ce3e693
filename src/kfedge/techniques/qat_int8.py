"""``qat-int8``: quantization-aware training (tfmot), exported as full-integer INT8 TFLite.

``quantize_model`` inserts fake-quant ops, the model is fine-tuned on the train split, and the
TFLite converter turns the learned ranges into an INT8 model. On a pruned and/or clustered
input (``preserve: auto``) the collaborative-optimization schemes keep its zeros / clusters:
``Default8BitPrunePreserveQuantizeScheme`` (PQAT), ``Default8BitClusterPreserveQuantizeScheme``
(CQAT) and ``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)`` (PCQAT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.techniques._base import (
    FineTuneConfig,
    IoDtype,
    Source,
    export_tflite,
    fine_tune,
    load_tf_keras,
    measured_sparsity,
)
from kfedge.techniques._tfmot import KerasTechnique

Preserve = Literal["none", "sparsity", "clusters", "sparsity+clusters"]


class Config(FineTuneConfig):
    """Parameters of ``qat-int8``."""

    epochs: int = Field(default=3, ge=1, le=200)
    learning_rate: float = Field(default=1e-4, gt=0, le=0.1)
    io_dtype: IoDtype = Field(default="float32", description="Model input/output type.")
    preserve: Literal["auto", "none", "sparsity", "clusters", "sparsity+clusters"] = Field(
        default="auto",
        description="What the QAT scheme keeps; auto: from the input's chain and sparsity.",
    )


def resolve_preserve(preserve: str, chain: str, model: Any) -> Preserve:
    """Turn ``auto`` into what the input needs: its chain, else measured sparsity."""
    if preserve != "auto":
        return preserve  # type: ignore[return-value]
    steps = chain.split(">") if chain else []
    pruned = "prune" in steps or measured_sparsity(model) >= 0.3
    clustered = "cluster" in steps
    if pruned and clustered:
        return "sparsity+clusters"
    if pruned:
        return "sparsity"
    return "clusters" if clustered else "none"


class Quantized(NamedTuple):
    """Result of :func:`qat_model`."""

    model: Any
    stats: dict[str, Any]


def qat_model(model: Any, data: Path, cfg: Any, preserve: Preserve) -> Quantized:
    """Apply the QAT scheme for ``preserve`` and fine-tune.

    Args:
        model: A stripped tf_keras model.
        data: Split dataset directory (train split).
        cfg: Fine-tune parameters (epochs, learning_rate, batch_size, seed).
        preserve: ``none``, ``sparsity``, ``clusters`` or ``sparsity+clusters``.

    Returns:
        The trained QAT model (fake-quant wrappers) and stats.
    """
    tfmot = compat.tfmot()
    qk = tfmot.quantization.keras
    combine = tfmot.experimental.combine
    try:
        if preserve == "none":
            qat = qk.quantize_model(model)
        else:
            scheme = {
                "sparsity": lambda: combine.Default8BitPrunePreserveQuantizeScheme(),
                "clusters": lambda: combine.Default8BitClusterPreserveQuantizeScheme(False),
                "sparsity+clusters": lambda: combine.Default8BitClusterPreserveQuantizeScheme(True),
            }[preserve]()
            qat = qk.quantize_apply(qk.quantize_annotate_model(model), scheme)
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"qat-int8: tfmot cannot quantize this model: {exc}") from exc
    stats = fine_tune(qat, data, cfg)
    stats["preserve"] = preserve
    return Quantized(qat, stats)


class QatInt8(
    KerasTechnique,
    name="qat-int8",
    quant_mode="int8",
    family="quantize",
    group="QAT",
    purpose="quantization-aware training",
    rank=90,
):
    """Quantization-aware training (fake-quant fine-tune) exported as full-integer INT8 TFLite.

    Keeps sparsity / clusters of pruned or clustered inputs (PQAT / CQAT / PCQAT).
    """

    Config = Config

    def own_name(self, cfg: Config) -> str:
        """``qat-int8`` or ``qat-int8-uint8io`` for integer IO."""
        return self.name if cfg.io_dtype == "float32" else f"{self.name}-{cfg.io_dtype}io"

    def transform(self, src: Source, data: Path | None, cfg: Config, work: Path) -> dict[str, Any]:
        """Quantization-aware fine-tune, then INT8 export from the learned ranges."""
        model = load_tf_keras(src.path)
        preserve = resolve_preserve(cfg.preserve, src.parent_chain, model)
        res = qat_model(model, data, cfg, preserve)  # type: ignore[arg-type]
        return {
            **res.stats,
            **export_tflite(res.model, work / self.model_file, "qat", io_dtype=cfg.io_dtype),
        }
