"""``prune``: magnitude pruning (tfmot ``prune_low_magnitude``) to a target sparsity, or 2:4.

apply -> fine-tune with ``UpdatePruningStep`` -> ``strip_pruning`` -> export. The sparsity
follows a ``PolynomialDecay`` schedule from ``initial_sparsity`` at step 0 to
``target_sparsity`` at ``end_fraction`` of the fine-tune steps (rounded to the pruning
frequency, so the last mask update lands exactly on the target), then the masks stay fixed
while the remaining steps recover accuracy. ``sparsity_m_by_n=(2, 4)`` prunes 2 of every 4
consecutive weights along the input channels (Conv2D / Dense whose input channels divide by 4).
``block_size=(1, 4)`` zeroes whole blocks of 4 consecutive input-channel weights instead of
single weights, on Conv2D as well as Dense (:mod:`._blocks`: tfmot's own block sparsity takes
2-D weights only): the same sparsity compresses better, since TFLite stores each block's
weights next to each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from pydantic import Field, model_validator

from kfedge import compat
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques import _blocks
from kfedge.techniques._base import (
    FineTuneConfig,
    Source,
    fine_tune,
    max_output_diff,
    sparsity_stats,
    steps_per_epoch,
    train_count,
)
from kfedge.techniques._tfmot import ExportConfig, StrippedTechnique

#: Layers whose kernels tfmot prunes (its registry lists DepthwiseConv2D with no prunable
#: weights, so depthwise kernels stay dense).
_UNSTRUCTURED = ("Conv2D", "Dense")


class Config(FineTuneConfig, ExportConfig):
    """Parameters of ``prune``."""

    target_sparsity: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Fraction of each pruned kernel set to zero."
    )
    initial_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    sparsity_m_by_n: tuple[int, int] | None = Field(
        default=None, description="Structured sparsity, e.g. [2, 4]: 2 zeros in every 4."
    )
    block_size: tuple[int, int] | None = Field(
        default=None,
        description="Block sparsity, e.g. [1, 4]: zeros in whole blocks of 4 consecutive "
        "input-channel weights (Conv2D and Dense).",
    )
    end_fraction: float = Field(
        default=0.7, gt=0.0, le=1.0, description="Where in the fine-tune the target is reached."
    )
    frequency: int = Field(default=10, ge=1, le=100_000, description="Steps between mask updates.")
    skip_layers: list[str] = Field(default_factory=list, description="Layers left unpruned.")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.initial_sparsity > self.target_sparsity:
            raise ValueError(
                f"initial_sparsity ({self.initial_sparsity}) must not exceed target_sparsity "
                f"({self.target_sparsity})"
            )
        if self.block_size is not None:
            if self.sparsity_m_by_n is not None:
                raise ValueError("give sparsity_m_by_n or block_size, not both")
            rows, cols = self.block_size
            if rows != 1 or not 2 <= cols <= 64:
                raise ValueError(
                    f"block_size must be [1, n] with 2 <= n <= 64 (n consecutive input-channel "
                    f"weights), got {[rows, cols]}"
                )
        if self.sparsity_m_by_n is not None:
            m, n = self.sparsity_m_by_n
            if not (1 <= m < n <= 64):
                raise ValueError(
                    f"sparsity_m_by_n must be (m, n) with 1 <= m < n <= 64, got {m, n}"
                )
        return self


def sparsity_tag(cfg: Any) -> str:
    """``50``, ``80-1x4`` (blocks) or ``2by4``: the sparsity part of a pruned candidate's name.

    ``cfg``: anything with ``target_sparsity``, ``sparsity_m_by_n`` and ``block_size`` (this
    technique's config, or a chain's pruning stage).
    """
    if cfg.block_size:
        return f"{round(cfg.target_sparsity * 100)}-1x{cfg.block_size[1]}"
    if cfg.sparsity_m_by_n:
        return f"{cfg.sparsity_m_by_n[0]}by{cfg.sparsity_m_by_n[1]}"
    return str(round(cfg.target_sparsity * 100))


class Pruned(NamedTuple):
    """Result of :func:`prune_model`."""

    model: Any
    wrapped: Any
    stats: dict[str, Any]


def schedule_steps(total: int, cfg: Config) -> tuple[int, int, int]:
    """(begin, end, frequency) such that the last mask update is at ``end`` < ``total``."""
    if total < 2:
        raise ConfigError(
            f"pruning needs at least 2 fine-tune steps, got {total}; raise epochs or lower "
            "batch_size"
        )
    freq = min(cfg.frequency, max(1, (total - 1) // 4))
    end = int(cfg.end_fraction * (total - 1)) // freq * freq
    if end <= 0:
        freq, end = 1, max(1, int(cfg.end_fraction * (total - 1)))
    return 0, end, freq


def prune_model(model: Any, data: Path, cfg: Config) -> Pruned:
    """Wrap the prunable layers, fine-tune with the schedule, strip.

    Args:
        model: A built tf_keras functional / sequential model (not modified in place).
        data: Split dataset directory (train split).
        cfg: Pruning parameters.

    Returns:
        The stripped model, the wrapped model, and stats (sparsity per layer and overall,
        schedule, fine-tune time, max difference stripped vs wrapped).
    """
    tfmot = compat.tfmot()
    keras = compat.keras()
    sp = tfmot.sparsity.keras
    names = [layer.name for layer in model.layers]
    unknown = [n for n in cfg.skip_layers if n not in names]
    if unknown:
        raise ConfigError(f"prune: skip_layers {unknown} are not layers of the model {names}")
    total = steps_per_epoch(train_count(data), cfg.batch_size) * cfg.epochs
    begin, end, freq = schedule_steps(total, cfg)
    if cfg.sparsity_m_by_n:
        sched = sp.ConstantSparsity(0.5, begin_step=begin, end_step=end, frequency=freq)
    else:
        sched = sp.PolynomialDecay(
            initial_sparsity=cfg.initial_sparsity,
            final_sparsity=cfg.target_sparsity,
            begin_step=begin,
            end_step=end,
            frequency=freq,
        )
    pruned: list[str] = []
    skipped: dict[str, str] = {}
    if cfg.block_size:
        return _prune_blocks(model, data, cfg, sched, (begin, end, freq, total))

    def wrap(layer: Any) -> Any:
        kind = type(layer).__name__
        if kind == "DepthwiseConv2D":
            skipped[layer.name] = "tfmot does not prune depthwise kernels"
            return layer
        if kind not in _UNSTRUCTURED:
            return layer
        if layer.name in cfg.skip_layers:
            skipped[layer.name] = "skip_layers"
            return layer
        if cfg.sparsity_m_by_n:
            n = cfg.sparsity_m_by_n[1]
            if int(layer.kernel.shape[-2]) % n:
                skipped[layer.name] = (
                    f"{int(layer.kernel.shape[-2])} input channels, not a multiple of {n}"
                )
                return layer
            pruned.append(layer.name)
            return sp.prune_low_magnitude(
                layer, pruning_schedule=sched, sparsity_m_by_n=cfg.sparsity_m_by_n
            )
        pruned.append(layer.name)
        return sp.prune_low_magnitude(layer, pruning_schedule=sched)

    try:
        wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise ModelFormatError(
            f"prune: the model cannot be cloned for pruning (functional or sequential tf_keras "
            f"models only): {exc}"
        ) from exc
    if not pruned:
        raise ModelFormatError(
            f"prune: the model has no prunable layer ({', '.join(_UNSTRUCTURED)}); skipped "
            f"{skipped}"
        )
    stats = fine_tune(wrapped, data, cfg, callbacks=[sp.UpdatePruningStep()])
    stripped = sp.strip_pruning(wrapped)
    stats["strip_max_abs_diff"] = max_output_diff(wrapped, stripped, data)
    stats.update(sparsity_stats(stripped, pruned))
    stats["pruned_layers"] = pruned
    stats["skipped_layers"] = skipped
    stats["schedule"] = {"begin_step": begin, "end_step": end, "frequency": freq, "steps": total}
    return Pruned(stripped, wrapped, stats)


def _prune_blocks(
    model: Any, data: Path, cfg: Config, sched: Any, steps: tuple[int, int, int, int]
) -> Pruned:
    """Block pruning (:mod:`._blocks`) of a copy of ``model`` on ``sched``, fine-tuned."""
    keras = compat.keras()
    block = int(cfg.block_size[1])  # type: ignore[index]
    tuned = keras.models.clone_model(model)
    tuned.set_weights(model.get_weights())
    layers: list[Any] = []
    skipped: dict[str, str] = {}
    for layer in tuned.layers:
        if layer.name in cfg.skip_layers:
            skipped[layer.name] = "skip_layers"
        elif type(layer).__name__ == "DepthwiseConv2D":
            skipped[layer.name] = "depthwise kernels have no input channels to block"
        elif type(layer).__name__ in _UNSTRUCTURED:
            why = _blocks.prunable(layer, block)
            if why:
                skipped[layer.name] = why
            else:
                layers.append(layer)
    if not layers:
        raise ModelFormatError(
            f"prune: no layer can be pruned in blocks of {block} (Conv2D / Dense whose input "
            f"channels divide by {block}); skipped {skipped}"
        )
    callback = _blocks.block_pruning(layers, sched, block)
    stats = fine_tune(tuned, data, cfg, callbacks=[callback])
    pruned = [ly.name for ly in layers]
    stats["strip_max_abs_diff"] = 0.0  # nothing to strip: the kernels hold the zeros
    stats.update(sparsity_stats(tuned, pruned))
    stats["block_size"] = [1, block]
    stats["block_sparsity"] = round(
        sum(_blocks.block_sparsity(ly.kernel.numpy(), block) * ly.kernel.shape.num_elements()
            for ly in layers)
        / sum(ly.kernel.shape.num_elements() for ly in layers),
        4,
    )  # fmt: skip
    stats["mask_updates"] = callback.updates
    stats["pruned_layers"] = pruned
    stats["skipped_layers"] = skipped
    begin, end, freq, total = steps
    stats["schedule"] = {"begin_step": begin, "end_step": end, "frequency": freq, "steps": total}
    return Pruned(tuned, tuned, stats)


class Prune(StrippedTechnique, name="prune", family="prune", purpose="pruning", rank=100):
    """Magnitude pruning to a target sparsity (polynomial schedule), in 1xN blocks, or 2:4.

    Fine-tuned, stripped; deployable as FP32 or INT8 TFLite.
    """

    Config = Config

    def tag(self, cfg: Config) -> str:
        """``prune-50``, ``prune-80-1x4`` (blocks) or ``prune-2by4``."""
        return f"prune-{sparsity_tag(cfg)}"

    def tune(self, model: Any, data: Path, cfg: Config, src: Source) -> tuple[Any, dict[str, Any]]:
        """Prune with the schedule, fine-tune, strip."""
        res = prune_model(model, data, cfg)
        return res.model, res.stats
