"""``channel-prune``: structured channel pruning to a physically smaller dense model.

Load the Keras model -> rank the channels of every prunable channel group (``l1``: the L1 norm
of each producer's output-channel kernel slice; ``bn_gamma``: ``|gamma|`` of the
BatchNormalization after it) -> remove the lowest-ranked ``ratio`` of each group
(:func:`kfedge.techniques._channels.prune_channels`: at least ``min_channels`` kept, counts
rounded up to multiples of ``round_to``) -> fine-tune the smaller model -> keep it
(``keras/model.keras``, so ``channel-prune>ptq-int8`` and the other chains start from it) and
export it as FP32 or INT8 TFLite.

Unlike ``prune`` (zeroed weights in tensors of the same size), the result has fewer filters /
units: fewer parameters and MACs on every runtime, no sparse kernels needed.

``ratio: "auto"`` searches a short list of ratios (``search_ratios``) by bisection, assuming
accuracy falls as the ratio grows: each try prunes the input model at that ratio and
fine-tunes it, and the largest ratio whose top-1 on the calibration split (the validation
split the baseline trained against; the eval split stays unseen) is within
``max_accuracy_drop`` of the input model's is kept. At most ``ceil(log2(n + 1))`` fine-tunes
for ``n`` ratios (2 for the default three); the kept model is the one that try fine-tuned.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques._base import FineTuneConfig, Source, fine_tune, load_xy
from kfedge.techniques._tfmot import ExportConfig, StrippedTechnique

#: Ratios ``ratio: "auto"`` chooses from by default.
DEFAULT_SEARCH_RATIOS = (0.25, 0.5, 0.75)
#: The split the ``auto`` search scores accuracy on.
SEARCH_SPLIT = "calibration"
#: Most ratios a search may list.
MAX_SEARCH_RATIOS = 8


def _fraction(value: Any, expected: str) -> float:
    """``value`` as a float in (0, 1), else a ValueError with the message ``expected``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(expected)
    try:
        f = float(value)
    except ValueError:
        raise ValueError(expected) from None
    if not 0.0 < f < 1.0:
        raise ValueError(expected)
    return f


class Config(FineTuneConfig, ExportConfig):
    """Parameters of ``channel-prune``."""

    learning_rate: float = Field(
        default=1e-3,
        gt=0,
        le=0.1,
        description="Adam learning rate (higher than prune's: removed channels cost more).",
    )
    ratio: float | Literal["auto"] = Field(
        default=0.5,
        description="Fraction of each channel group's channels removed, in (0, 1); or 'auto': "
        "the largest of search_ratios whose accuracy on the calibration split stays within "
        "max_accuracy_drop of the input model's.",
    )
    criterion: Literal["l1", "bn_gamma"] = Field(
        default="l1",
        description="Channel ranking: l1 (L1 norm of the producer kernels' output slices) or "
        "bn_gamma (|gamma| of the BatchNormalization after them; l1 where there is none).",
    )
    min_channels: int = Field(
        default=8, ge=1, le=4096, description="Fewest channels a group keeps."
    )
    round_to: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Kept channel counts are rounded up to multiples of this (1: no rounding).",
    )
    skip_layers: list[str] = Field(
        default_factory=list, description="Layers whose channel groups are left whole."
    )
    max_accuracy_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="ratio 'auto': largest top-1 drop on the calibration split against the "
        "input model (a fraction: 0.01 = one point); never below one calibration sample.",
    )
    search_ratios: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SEARCH_RATIOS),
        description="ratio 'auto': the ratios to choose from (bisection; at most "
        "ceil(log2(n + 1)) fine-tunes).",
    )

    @field_validator("ratio", mode="before")
    @classmethod
    def _ratio(cls, value: Any) -> float | str:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return _fraction(
            value,
            "ratio must be 'auto' or a number in (0, 1): the fraction of each channel group's "
            "channels removed",
        )

    @field_validator("search_ratios", mode="before")
    @classmethod
    def _search_ratios(cls, value: Any) -> list[float]:
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("search_ratios must be a non-empty list of numbers in (0, 1)")
        if len(value) > MAX_SEARCH_RATIOS:
            raise ValueError(
                f"search_ratios takes at most {MAX_SEARCH_RATIOS} ratios, got {len(value)}"
            )
        ratios = [
            _fraction(v, f"search_ratios: {v!r} is not a number in (0, 1) (a fraction removed)")
            for v in value
        ]
        if len(set(ratios)) != len(ratios):
            raise ValueError("search_ratios must be distinct")
        return sorted(ratios)

    @model_validator(mode="after")
    def _search_only_with_auto(self) -> Config:
        given = sorted({"max_accuracy_drop", "search_ratios"} & self.model_fields_set)
        if self.ratio != "auto" and given:
            raise ValueError(
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with "
                f"ratio 'auto' (a search), but ratio is {self.ratio}"
            )
        return self

    @property
    def auto(self) -> bool:
        """Whether the ratio is searched."""
        return self.ratio == "auto"


def split_accuracy(model: Any, data: Path, split: str = SEARCH_SPLIT) -> tuple[float, int]:
    """Top-1 accuracy of a Keras model on one split of the dataset, and the sample count."""
    x, y = load_xy(data, split)
    pred = np.asarray(model.predict(x, batch_size=256, verbose=0))
    return float(np.mean(np.argmax(pred, axis=-1) == y)), int(len(y))


def _prune(model: Any, ratio: float, cfg: Config) -> tuple[Any, dict[str, Any]]:
    """Prune ``model`` at ``ratio`` with the config's ranking and rounding rules."""
    from kfedge.techniques._channels import prune_channels

    return prune_channels(
        model,
        ratio,
        criterion=cfg.criterion,
        min_channels=cfg.min_channels,
        round_to=cfg.round_to,
        skip_layers=cfg.skip_layers,
    )


def _check_prunable(model: Any, cfg: Config) -> None:
    """Refuse unknown skip_layers and a model with no prunable channel group."""
    from kfedge.techniques._channels import channel_groups

    names = [layer.name for layer in model.layers]
    unknown = [n for n in cfg.skip_layers if n not in names]
    if unknown:
        raise ConfigError(
            f"channel-prune: skip_layers {unknown} are not layers of the model; its layers: {names}"
        )
    groups = channel_groups(model)
    if not any(g.prunable for g in groups):
        why = {g.id: g.reason for g in groups}
        raise ModelFormatError(
            f"channel-prune: the model has no channel group that can be pruned "
            f"(a group's channels must be made by a Conv / SeparableConv / Dense layer and "
            f"reach neither a model output nor a layer that cannot be sliced): {why}"
        )


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The run's stats from :func:`prune_channels`' (the group table renamed, ratios added)."""
    out = dict(stats)
    groups = out.pop("groups")
    out["channel_groups"] = groups
    out["kept_channels"] = {gid: g["kept"] for gid, g in groups.items()}
    out["params_ratio"] = round(out["params_after"] / max(1, out["params_before"]), 4)
    if out.get("macs_before") and out.get("macs_after") is not None:
        out["macs_ratio"] = round(out["macs_after"] / out["macs_before"], 4)
    return out


def fixed_ratio(model: Any, data: Path, cfg: Config) -> tuple[Any, dict[str, Any]]:
    """Prune ``model`` at ``cfg.ratio`` and fine-tune the smaller model.

    Args:
        model: A built functional / sequential tf_keras model (not modified).
        data: Split dataset directory (train split).
        cfg: Parameters (a numeric ``ratio``).

    Returns:
        The fine-tuned smaller model and the stats of the run.

    Raises:
        ConfigError: The ratio removes no channel (groups too small for ``min_channels`` /
            ``round_to``).
    """
    new, stats = _prune(model, float(cfg.ratio), cfg)
    if stats["channels_after"] == stats["channels_before"]:
        raise ConfigError(
            f"channel-prune: ratio {cfg.ratio} removes no channel: every prunable group keeps "
            f"all its channels after min_channels={cfg.min_channels} and round_to="
            f"{cfg.round_to} ({stats['groups']}); raise ratio or lower min_channels / round_to"
        )
    stats = {**_summary(stats), **fine_tune(new, data, cfg)}
    return new, stats


def _rank(stats: dict[str, Any]) -> tuple[float, float]:
    """Order of the fallback: most accurate first, then the smaller ratio."""
    return stats["validation_accuracy"], -stats["ratio"]


def auto_ratio(model: Any, data: Path, cfg: Config) -> tuple[Any, dict[str, Any]]:
    """Search ``cfg.search_ratios`` by bisection for the largest ratio within the accuracy bound.

    Each try prunes ``model`` at a ratio, fine-tunes it and scores top-1 on the calibration
    split; a try is within the bound when its drop against ``model``'s top-1 there is at most
    ``max(max_accuracy_drop, 1 / samples)``. Within: try a larger ratio; else a smaller one.
    When no try is within the bound, the most accurate one is kept (smallest ratio on ties)
    and ``search.within_bound`` is False.

    Args:
        model: A built functional / sequential tf_keras model (not modified).
        data: Split dataset directory (train and calibration splits).
        cfg: Parameters (``ratio: "auto"``).

    Returns:
        The kept fine-tuned model and the stats: the kept try's surgery and fine-tune stats,
        ``ratio`` (the one kept), ``search`` (every try: ratio, accuracy, drop, params, MACs,
        fine-tune seconds; the bound, the baseline accuracy, wall time), ``search_seconds``,
        ``search_fine_tunes``, ``validation_accuracy``, ``baseline_validation_accuracy``,
        ``accuracy_drop``.
    """
    t0 = time.perf_counter()
    ratios = list(cfg.search_ratios)
    base_acc, samples = split_accuracy(model, data)
    bound = max(cfg.max_accuracy_drop, 1.0 / max(1, samples))
    trials: list[dict[str, Any]] = []
    kept: tuple[Any, dict[str, Any]] | None = None  # the largest ratio within the bound
    top: tuple[Any, dict[str, Any]] | None = None  # the most accurate try (the fallback)
    lo, hi = 0, len(ratios) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        ratio = ratios[mid]
        new, stats = _prune(model, ratio, cfg)
        stats = {**_summary(stats), **fine_tune(new, data, cfg)}
        acc, _ = split_accuracy(new, data)
        drop = base_acc - acc
        within = drop <= bound + 1e-9
        stats["validation_accuracy"] = round(acc, 4)
        trials.append(
            {
                "ratio": ratio,
                "accuracy": round(acc, 4),
                "accuracy_drop": round(drop, 4),
                "within_bound": within,
                "params_after": stats["params_after"],
                "macs_after": stats["macs_after"],
                "fine_tune_seconds": stats["fine_tune_seconds"],
            }
        )
        print(
            f"[kfedge] channel-prune auto: ratio {ratio}: top-1 {acc:.4f} on {SEARCH_SPLIT} "
            f"(input model {base_acc:.4f}, drop {drop:+.4f}, bound {bound:.4f}) -> "
            f"{'within' if within else 'too lossy'}",
            flush=True,
        )
        if within:
            kept, lo = (new, stats), mid + 1
        else:
            hi = mid - 1
        if top is None or (round(acc, 4), -ratio) > _rank(top[1]):
            top = (new, stats)
    within_bound = kept is not None
    if kept is None:
        kept = top
        print(
            f"[kfedge] channel-prune auto: no ratio of {ratios} kept top-1 within {bound:.4f} of "
            f"the input model's; keeping the most accurate, ratio {top[1]['ratio']}",
            flush=True,
        )
    assert kept is not None  # at least one try ran
    new, stats = kept
    best = float(stats["ratio"])
    seconds = round(time.perf_counter() - t0, 2)
    stats["baseline_validation_accuracy"] = round(base_acc, 4)
    stats["accuracy_drop"] = round(base_acc - stats["validation_accuracy"], 4)
    stats["search_seconds"] = seconds
    stats["search_fine_tunes"] = len(trials)
    stats["search"] = {
        "strategy": "bisection",
        "split": SEARCH_SPLIT,
        "samples": samples,
        "ratios": ratios,
        "max_fine_tunes": math.ceil(math.log2(len(ratios) + 1)),
        "max_accuracy_drop": cfg.max_accuracy_drop,
        "bound": round(bound, 6),
        "baseline_accuracy": round(base_acc, 4),
        "trials": trials,
        "chosen_ratio": best,
        "within_bound": within_bound,
        "fine_tune_seconds": round(sum(t["fine_tune_seconds"] for t in trials), 2),
        "seconds": seconds,
    }
    return new, stats


class ChannelPrune(StrippedTechnique, name="channel-prune", purpose="channel pruning", rank=160):
    """Structured channel pruning: whole filters / units removed, a smaller dense model.

    Channels ranked by L1 norm or BatchNormalization gamma, the lowest ratio of each group
    removed (or the largest ratio within an accuracy bound, ``ratio: auto``), fine-tuned;
    fewer parameters and MACs on every runtime; deployable as FP32 or INT8 TFLite.
    """

    Config = Config

    def splits(self, cfg: Config) -> tuple[str, ...]:
        """Train; calibration too for the ``auto`` search or an INT8 export."""
        if cfg.auto or cfg.quantize == "int8":
            return ("train", "calibration")
        return ("train",)

    def tag(self, cfg: Config) -> str:
        """``channel-prune-50``, or ``channel-prune-auto``."""
        if cfg.auto:
            return f"{self.name}-auto"
        return f"{self.name}-{round(float(cfg.ratio) * 100)}"

    def tune(self, model: Any, data: Path, cfg: Config, src: Source) -> tuple[Any, dict[str, Any]]:
        """Prune (at the ratio, or the ratio the search picks) and fine-tune."""
        _check_prunable(model, cfg)
        if cfg.auto:
            return auto_ratio(model, data, cfg)
        return fixed_ratio(model, data, cfg)
