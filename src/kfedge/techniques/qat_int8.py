"""``qat-int8``: quantization-aware training (tfmot), exported as full-integer INT8 TFLite.

``quantize_model`` inserts fake-quant ops, the model is fine-tuned on the train split, and the
TFLite converter turns the learned ranges into an INT8 model. On a pruned and/or clustered
input (``preserve: auto``) the collaborative-optimization schemes keep its zeros / clusters:
``Default8BitPrunePreserveQuantizeScheme`` (PQAT), ``Default8BitClusterPreserveQuantizeScheme``
(CQAT) and ``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)`` (PCQAT).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field

from kfedge import compat
from kfedge.candidate import Candidate
from kfedge.errors import ModelFormatError
from kfedge.techniques._base import (
    FineTuneConfig,
    IoDtype,
    Source,
    check_data,
    check_tf_keras,
    configure_int8,
    convert_keras_tflite,
    fine_tune,
    finish,
    load_tf_keras,
    measured_sparsity,
    resolve_source,
    staging,
    tflite_stats,
    validate,
)

NAME = "qat-int8"
DESCRIPTION = (
    "Quantization-aware training (fake-quant fine-tune) exported as full-integer INT8 TFLite; "
    "keeps sparsity / clusters of pruned or clustered inputs (PQAT / CQAT / PCQAT)."
)
NEEDS_DATA = True

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


def check(src: Source, data: str | Path | None, cfg: Any) -> None:
    """Refuse non tf_keras models and a dataset without a train split."""
    check_tf_keras(src, "quantization-aware training")
    check_data(data, ("train",), "quantization-aware training (fine-tuning)")


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


def export(model: Any, out: Path, io_dtype: str) -> dict[str, Any]:
    """Convert a trained QAT model to full-integer TFLite (ranges learned, no calibration)."""
    stats: dict[str, Any] = {}

    def configure(conv: Any) -> None:
        stats.update(configure_int8(conv, None, io_dtype, True, 0))

    convert_keras_tflite(model, out, configure)
    stats.update(tflite_stats(out))
    return stats


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Quantization-aware fine-tune, then INT8 TFLite export.

    Args:
        model_path: Candidate directory (its stripped Keras model) or tf_keras model file.
        data: Split dataset directory (train split).
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write (``model.tflite``).

    Returns:
        The candidate.
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    t0 = time.perf_counter()
    data = Path(data)  # type: ignore[arg-type]
    model = load_tf_keras(src.path)
    res = qat_model(model, data, cfg, resolve_preserve(cfg.preserve, src.parent_chain, model))
    own = NAME if cfg.io_dtype == "float32" else f"{NAME}-{cfg.io_dtype}io"
    with staging(out_dir) as work:
        stats = {**res.stats, **export(res.model, work / "model.tflite", cfg.io_dtype)}
        return finish(
            work,
            src=src,
            own_name=own,
            steps=NAME,
            config=cfg,
            model_file="model.tflite",
            stats=stats,
            started=t0,
        )
