"""Wording helpers of the renderer: every phrase that states a figure or a verdict is made here.

The verdict rules are :func:`kfedge.stats.compare_ratio`'s: a file is *faster* or *slower* than
another only when the whole confidence interval of their paired ratio lies on one side of 1
and the ratio differs from 1 by more than :data:`PRACTICAL`; otherwise the two *tie*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.common import fmt, md_table, ratio_str

__all__ = [
    "PRACTICAL",
    "ci",
    "estimate",
    "fmt",
    "md_table",
    "ms",
    "pair_estimate",
    "ratio_cell",
    "ratio_str",
    "relation",
    "threads_word",
    "unstable_note",
    "verdict",
]

#: Differences smaller than this fraction are ties (as :func:`kfedge.stats.compare_ratio`).
PRACTICAL = 0.02


def estimate(d: dict[str, Any] | None) -> Any:
    """A stored ratio estimate (``RatioEstimate.to_dict()``) as a ``RatioEstimate`` (or None)."""
    if not d:
        return None
    from kfedge.stats import RatioEstimate

    return RatioEstimate(
        float(d["ratio"]),
        float(d["low"]),
        float(d["high"]),
        int(d["rounds"]),
        float(d["confidence"]),
        float(d["spread"]),
    )


def verdict(d: dict[str, Any] | None) -> str | None:
    """``faster`` / ``slower`` / ``tie`` for a stored ratio estimate (None without one)."""
    est = estimate(d)
    if est is None:
        return None
    from kfedge.stats import compare_ratio

    return str(compare_ratio(est, PRACTICAL))


def pair_estimate(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """The paired ratio a / b of two files' per-round p50s (same rounds), as a stored dict."""
    if not a or len(a) != len(b):
        return None
    from kfedge.stats import ratio_estimate

    return ratio_estimate(list(a), list(b)).to_dict()


def ci(lo: float | None, hi: float | None, spec: str = ".3f", unit: str = "") -> str:
    """``[lo, hi]`` with a unit."""
    if lo is None or hi is None:
        return ""
    return f"[{lo:{spec}}, {hi:{spec}}]{unit}"


def ms(value: float | None) -> str:
    """A latency in ms with precision that suits its size."""
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio_cell(d: dict[str, Any] | None, baseline: bool = False) -> str:
    """``0.82x [0.78, 0.86] faster`` for a table cell (``1.00x (baseline)`` for the baseline)."""
    if baseline:
        return "1.00x (baseline)"
    if not d:
        return "n/a"
    v = verdict(d)
    return f"{d['ratio']:.2f}x {ci(d['low'], d['high'], '.2f')} {v}"


def relation(d: dict[str, Any] | None, other: str) -> str:
    """A sentence fragment: ``1.21x faster than X`` / ``1.08x slower than X`` / a tie."""
    if not d:
        return f"not compared with {other}"
    v = verdict(d)
    r, lo, hi = d["ratio"], d["low"], d["high"]
    interval = f"ratio {r:.2f}x, 95 % CI {lo:.2f}-{hi:.2f}x"
    if v == "faster":
        return f"{1 / r:.2f}x faster than {other} ({interval})"
    if v == "slower":
        return f"{r:.2f}x slower than {other} ({interval})"
    return f"not measurably different from {other} ({interval}: a tie)"


def threads_word(t: int | str) -> str:
    """``1 thread`` / ``2 threads``."""
    return f"{t} thread" + ("" if int(t) == 1 else "s")


def unstable_note(rows: Sequence[dict[str, Any]], threads: Sequence[Any], advice: str = "") -> str:
    """The note naming rows whose per-round p50s spread more than 20 % ("" when none does).

    Args:
        rows: Result rows, each with ``latency[t]["p50_rounds"]`` and ``["spread"]``.
        threads: The thread counts (keys of ``latency``) to look at.
        advice: A sentence appended after the list (with its leading space).

    Returns:
        The note, or an empty string.
    """
    shaky = [
        f"`{r['name']}` @{t}t " + "/".join(ms(v) for v in r["latency"][t]["p50_rounds"]) + " ms"
        for t in threads
        for r in rows
        if r["latency"][t]["spread"] > 0.2
    ]
    if not shaky:
        return ""
    return (
        "Unstable (per-round p50s differ by more than 20 % of their median): "
        + "; ".join(shaky)
        + "."
        + advice
    )
