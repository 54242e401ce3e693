"""Ranking the candidates that meet the goals: latency tiers, accuracy ties, size.

* **Latency tiers, anchored on the selected candidate.** The fastest remaining candidate finds
  the group not really slower than it; the group's best (below) is the tier's *selected*
  candidate, and the tier is every remaining candidate not really slower than *that one*. So
  every candidate after the tier is really slower than the tier's choice, and the verdicts the
  reason lists against the selected candidate are read from the intervals printed beside them
  (latency tiers are not transitive: "tied with the fastest" is not "tied with the selected").
* **Family-wise.** Each reference's comparisons form a family: with ``k`` candidates, each
  paired interval is computed at ``1 - 0.05 / (k - 1)`` (:func:`kfedge.stats.simultaneous`).
* **Accuracy ties are ties.** One candidate is *more accurate* than another only when McNemar's
  exact paired test on the same evaluation samples says so (p < 0.05); otherwise the next
  criterion decides (size, then latency). Without per-sample correctness (older evaluations)
  the point accuracies are compared as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfedge import stats
from kfedge.compare import FAMILY_CONFIDENCE, Latency, ratio_text
from kfedge.evaluation import Evaluation
from kfedge.sidebyside import SideBySide

#: Significance level of the paired accuracy test.
ACCURACY_ALPHA = 0.05


@dataclass(frozen=True)
class Pair:
    """One candidate's latency against a reference, paired by round.

    Attributes:
        name: The candidate.
        ref: The reference.
        ratio: ``name / ref`` (geometric mean of the rounds' ratios).
        low: Lower end of its interval.
        high: Upper end.
        confidence: The interval's per-comparison confidence.
        verdict: ``faster`` / ``slower`` / ``tie``, read from that interval.
        practical: The tie threshold it was judged with.
    """

    name: str
    ref: str
    ratio: float
    low: float
    high: float
    confidence: float
    verdict: str
    practical: float = 0.0

    @property
    def word(self) -> str:
        """The verdict as printed (:func:`verdict_word`)."""
        return verdict_word(self.verdict, self.low, self.high, self.practical)

    @property
    def text(self) -> str:
        """``1.03x [0.94, 1.12]``."""
        return ratio_text(self.ratio, (self.low, self.high))


def verdict_word(verdict: str | None, low: float, high: float, practical: float) -> str:
    """The verdict as the evidence prints it, never contradicting the interval beside it.

    ``faster`` / ``slower`` when the interval lies wholly below / above 1 (and past the tie
    threshold); ``tied`` when it holds 1; a difference the interval shows but smaller than the
    tie threshold is ``slower by under 2 % (a tie)`` / ``faster by under 2 % (a tie)``.
    """
    if verdict in ("faster", "slower"):
        return verdict
    pct = f"{practical * 100:.3g} %"
    if low > 1.0:
        return f"slower by under {pct} (a tie)"
    if high < 1.0:
        return f"faster by under {pct} (a tie)"
    return "tied"


def pair(timings: SideBySide, name: str, ref: str, confidence: float, practical: float) -> Pair:
    """``name``'s ratio to ``ref`` with its interval and the verdict read from it."""
    est = timings.ratio(name, ref, confidence)
    verdict = stats.compare_ratio(est, practical)
    return Pair(name, ref, est.ratio, est.low, est.high, confidence, verdict, practical)


def accuracy_test(a: Evaluation, b: Evaluation) -> dict[str, Any] | None:
    """McNemar's exact test of ``a`` against ``b``, or None when they cannot be paired."""
    ra, rb = a.sample_correct, b.sample_correct
    if ra is None or rb is None or not ra.same_samples(rb):
        return None
    return stats.mcnemar(ra.to_array(), rb.to_array())


def more_accurate(a: Evaluation, b: Evaluation, alpha: float = ACCURACY_ALPHA) -> bool:
    """Whether ``a`` is really more accurate than ``b``.

    With per-sample correctness on the same samples: McNemar's p below ``alpha`` and ``a``
    ahead; without: ``a``'s point accuracy higher (an older evaluation cannot be paired).
    """
    test = accuracy_test(a, b)
    if test is None:
        return a.accuracy > b.accuracy
    return test["p_value"] < alpha and test["a_only"] > test["b_only"]


def best_of(names: list[str], evs: dict[str, Evaluation], tiebreak: Callable[[str], Any]) -> str:
    """The most accurate of ``names``, ``tiebreak`` deciding among those tied on accuracy.

    Tied on accuracy: the most accurate by point is not really more accurate
    (:func:`more_accurate`) than them.
    """
    top = max(names, key=lambda n: (evs[n].accuracy, n))
    tied = [n for n in names if n == top or not more_accurate(evs[top], evs[n])]
    return min(tied, key=tiebreak)


def accuracy_order(
    names: list[str], evs: dict[str, Evaluation], tiebreak: Callable[[str], Any]
) -> list[str]:
    """``names`` best first, by :func:`best_of` repeatedly."""
    rest, out = list(names), []
    while rest:
        best = best_of(rest, evs, tiebreak)
        out.append(best)
        rest.remove(best)
    return out


@dataclass
class Ranked:
    """The ranking of the candidates that pass.

    Attributes:
        ranking: Best first.
        tiers: Latency tier of each (0: the selected candidate's).
        confidence: Per-comparison confidence of the paired intervals between candidates.
        vs_selected: Every other timed candidate against the selected one.
    """

    ranking: list[str]
    tiers: dict[str, int]
    confidence: float | None = None
    vs_selected: dict[str, Pair] | None = None


def _by_p50(names: list[str], figures: dict[str, Latency]) -> dict[str, int]:
    values = sorted({figures[n].p50 for n in names})
    return {n: values.index(figures[n].p50) for n in names}


def rank(
    passing: list[str],
    evs: dict[str, Evaluation],
    figures: dict[str, Latency],
    timings: SideBySide | None,
    objective: str,
    practical: float,
) -> Ranked:
    """Rank the candidates that meet the goals (see the module's rules).

    Args:
        passing: Their names.
        evs: Evaluations by name.
        figures: Latency figures by name (:func:`kfedge.compare.latency_figures`).
        timings: The side-by-side session, or None (single measurements: every distinct p50
            is its own tier, no notion of noise).
        objective: ``latency``, ``size`` or ``accuracy``.
        practical: Ratios within this fraction of 1 are ties.

    Returns:
        The ranking, tiers, and with timings the verdicts against the selected candidate.
    """
    if not passing:
        return Ranked([], {})

    def size(n: str) -> float:
        return float(evs[n].size_bytes)

    def speed(n: str) -> float:
        return figures[n].ratio or figures[n].p50

    timed = timings is not None and all(n in timings.models for n in passing)
    if not timed:
        tiers = _by_p50(passing, figures)
        ranked = _order(passing, evs, objective, tiers, size, speed)
        return Ranked(ranked, tiers)
    assert timings is not None
    conf = stats.simultaneous(FAMILY_CONFIDENCE, len(passing) - 1)
    cache: dict[tuple[str, str], Pair] = {}

    def vs(n: str, ref: str) -> Pair:
        if (n, ref) not in cache:
            cache[n, ref] = pair(timings, n, ref, conf, practical)
        return cache[n, ref]

    pool, tiers, tier_order, t = list(passing), {}, [], 0
    while pool:
        anchor = min(pool, key=lambda n: (speed(n), n))
        group = [n for n in pool if n == anchor or vs(n, anchor).verdict != "slower"]
        best = best_of(group, evs, lambda n: (size(n), speed(n), n))
        members = [n for n in pool if n == best or vs(n, best).verdict != "slower"]
        rest = accuracy_order(
            [n for n in members if n != best], evs, lambda n: (size(n), speed(n), n)
        )
        tier_order += [best, *rest]
        for n in members:
            tiers[n] = t
        pool = [n for n in pool if n not in members]
        t += 1
    ranked = (
        tier_order
        if objective == "latency"
        else _order(passing, evs, objective, tiers, size, speed)
    )
    selected = ranked[0]
    others = [n for n in timings.models if n != selected and n in figures]
    return Ranked(ranked, tiers, conf, {n: vs(n, selected) for n in others})


def _order(
    names: list[str],
    evs: dict[str, Evaluation],
    objective: str,
    tiers: dict[str, int],
    size: Callable[[str], float],
    speed: Callable[[str], float],
) -> list[str]:
    if objective == "size":
        return sorted(names, key=lambda n: (size(n), tiers[n], -evs[n].accuracy, n))
    if objective == "accuracy":
        return accuracy_order(names, evs, lambda n: (tiers[n], size(n), speed(n), n))
    out: list[str] = []
    for t in sorted(set(tiers.values())):
        out += accuracy_order(
            [n for n in names if tiers[n] == t], evs, lambda n: (size(n), speed(n), n)
        )
    return out
