"""Statistics for measurements that decide a deployment: intervals, ratios, ties, paired tests.

Latency on a real machine is noisy; a single number per candidate lets noise pick the winner.
Everything here turns repeated measurements into an estimate with an interval:

* :func:`median_ci` — a distribution-free confidence interval for a median (order statistics).
* :func:`ratio_estimate` — the latency ratio of a candidate to a baseline from interleaved rounds
  (one median per round each), as a geometric mean with a Student-t interval on the log ratios.
  Rounds are paired: both were timed in the same round, so slow drifts of the machine cancel.
* :func:`compare_ratio` — ``"faster"`` only when the whole interval lies below 1 (and below the
  practical threshold), ``"slower"`` when it lies above, otherwise ``"tie"``.
* :func:`wilson_interval` — accuracy with an interval; :func:`mcnemar` — the exact paired test of
  two classifiers scored on the same samples.

Pure Python + NumPy: no SciPy at run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

#: Two-sided 95 % Student-t quantiles (t_{0.975, df}) for df = 1..30; others are computed.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

Verdict = Literal["faster", "slower", "tie"]


def _z(confidence: float) -> float:
    """Standard normal quantile for a two-sided interval (Acklam's rational approximation)."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    p = 1.0 - (1.0 - confidence) / 2.0
    # Acklam's algorithm, central + upper tail (p > 0.5 here); |error| < 1.2e-9.
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    if p <= 0.97575:
        q = p - 0.5
        r = q * q
        num = ((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]
        den = ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
        return num * q / den
    q = math.sqrt(-2 * math.log(1 - p))
    num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
    return -num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def t_sf2(t: float, df: int) -> float:
    """Two-sided tail probability ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom.

    Exact (the regularized incomplete beta function ``I_{df/(df+t²)}(df/2, 1/2)``).

    Args:
        t: The statistic.
        df: Degrees of freedom (>= 1).

    Returns:
        The two-sided p-value.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    x = df / (df + t * t)
    if x >= 1.0:
        return 1.0
    a, b = df / 2.0, 0.5
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, front * _betacf(a, b, x) / a)
    return min(1.0, 1.0 - front * _betacf(b, a, 1.0 - x) / b)


@lru_cache(maxsize=1024)
def t_quantile(df: int, confidence: float = 0.95) -> float:
    """Two-sided Student-t quantile ``t_{(1+confidence)/2, df}``.

    Table values for 95 % and df <= 30; otherwise the exact quantile, found by bisection on
    :func:`t_sf2` (simultaneous intervals need far tails, e.g. 99.75 % at df 4).

    Args:
        df: Degrees of freedom (>= 1).
        confidence: Two-sided confidence level, e.g. 0.95.

    Returns:
        The quantile.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if abs(confidence - 0.95) < 1e-12 and df <= len(_T975):
        return _T975[df - 1]
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    alpha = 1.0 - confidence
    lo, hi = 0.0, max(1.0, _z(confidence))
    while t_sf2(hi, df) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_sf2(mid, df) > alpha else (lo, mid)
        if hi - lo < 1e-10 * hi:
            break
    return (lo + hi) / 2.0


def simultaneous(confidence: float, comparisons: int) -> float:
    """The per-comparison confidence that gives ``confidence`` for a family (Bonferroni).

    With ``m`` comparisons each at ``1 - (1 - confidence) / m``, every interval of the family
    covers its true value at once with probability at least ``confidence``, whatever their
    correlation (all candidates share one baseline), so a verdict read from any of them, the
    best of many included, is wrong with probability at most ``1 - confidence``.

    Args:
        confidence: The family's confidence, e.g. 0.95.
        comparisons: How many comparisons the family holds (>= 1).

    Returns:
        The confidence each interval is computed at.
    """
    return 1.0 - (1.0 - confidence) / max(1, comparisons)


def median_ci_coverage(n: int, confidence: float = 0.95) -> float:
    """The real coverage of :func:`median_ci` on ``n`` values (order statistics are discrete).

    At 5 values the interval is the range, which covers the median with 93.75 %, not 95 %.

    Args:
        n: How many values.
        confidence: The confidence asked for.

    Returns:
        The coverage, at least ``confidence`` when ``n`` allows it, else that of the range.
    """
    k = max(_median_rank(n, confidence), 1)
    return 1.0 - 2.0 * sum(math.comb(n, j) for j in range(k)) / 2.0**n


def _median_rank(n: int, confidence: float) -> int:
    """The largest k with P(B <= k-1) <= alpha/2, B ~ Binomial(n, 1/2) (0: none)."""
    alpha, cdf, k = 1.0 - confidence, 0.0, 0
    for j in range(n):
        p_j = math.comb(n, j) / 2.0**n
        if cdf + p_j > alpha / 2:
            break
        cdf += p_j
        k = j + 1
    return k


def median_ci(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free confidence interval for the median, from order statistics.

    The interval ``[x_(k), x_(n-k+1)]`` covers the true median with probability at least
    ``confidence`` (binomial(n, 1/2) tails). With too few values for that coverage the interval
    is the whole range.

    Args:
        values: The measurements (at least one).
        confidence: Two-sided confidence level.

    Returns:
        ``(low, high)``.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0:
        raise ValueError("median_ci needs at least one value")
    k = _median_rank(n, confidence)
    if k == 0:
        return float(x[0]), float(x[-1])
    return float(x[k - 1]), float(x[n - k])


@dataclass(frozen=True)
class RatioEstimate:
    """A latency ratio candidate / baseline with its interval.

    Attributes:
        ratio: Geometric mean of the per-round ratios (< 1: the candidate is faster).
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        rounds: Paired rounds used.
        confidence: Confidence level of the interval.
        spread: Relative half-width of the interval ((high - low) / 2 / ratio): the noise.
    """

    ratio: float
    low: float
    high: float
    rounds: int
    confidence: float
    spread: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def ratio_estimate(
    candidate: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> RatioEstimate:
    """The candidate/baseline latency ratio from paired rounds.

    Args:
        candidate: One latency figure per round (e.g. each round's median), candidate.
        baseline: The baseline's figure for the same rounds, in the same order.
        confidence: Two-sided confidence level.

    Returns:
        The estimate. With a single round the interval is the point (no noise estimate):
        callers should time at least 3 rounds.

    Raises:
        ValueError: Unequal lengths, no rounds, or a non-positive time.
    """
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.shape != b.shape or c.ndim != 1 or c.size == 0:
        raise ValueError(
            f"ratio_estimate needs two equal-length, non-empty series of per-round times; "
            f"got {c.shape} and {b.shape}"
        )
    if (c <= 0).any() or (b <= 0).any():
        raise ValueError("latencies must be positive")
    logs = np.log(c) - np.log(b)
    n = logs.size
    mean = float(logs.mean())
    if n == 1:
        half = 0.0
    else:
        half = t_quantile(n - 1, confidence) * float(logs.std(ddof=1)) / math.sqrt(n)
    ratio = math.exp(mean)
    low, high = math.exp(mean - half), math.exp(mean + half)
    return RatioEstimate(ratio, low, high, n, confidence, (high - low) / 2 / ratio)


def compare_ratio(est: RatioEstimate, practical: float = 0.02) -> Verdict:
    """Whether a candidate is really faster or slower than its baseline, or tied.

    Args:
        est: The ratio estimate.
        practical: Differences smaller than this fraction are ties even when the interval is
            narrow (a 1 % gain is not worth a less accurate model).

    Returns:
        ``"faster"`` when the whole interval lies below 1 and the ratio below ``1 - practical``;
        ``"slower"`` when the whole interval lies above 1 and the ratio above ``1 + practical``;
        ``"tie"`` otherwise (the difference is inside the noise or too small to matter).
    """
    if est.high < 1.0 and est.ratio < 1.0 - practical:
        return "faster"
    if est.low > 1.0 and est.ratio > 1.0 + practical:
        return "slower"
    return "tie"


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (accuracy).

    Args:
        correct: Number of correct predictions.
        total: Number of samples (> 0).
        confidence: Two-sided confidence level.

    Returns:
        ``(low, high)`` in [0, 1].
    """
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct}/{total}")
    z = _z(confidence)
    p = correct / total
    den = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / den
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(
    correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray
) -> dict[str, Any]:
    """Exact McNemar test: do two classifiers scored on the same samples differ in accuracy?

    Only the discordant samples count: ``a_only`` (A right, B wrong) and ``b_only``. Under the
    null hypothesis each discordant sample is a fair coin, so the two-sided p-value is the
    binomial tail ``2 * P(X <= min(a_only, b_only))``, X ~ Binomial(a_only + b_only, 1/2).

    Args:
        correct_a: Per-sample correctness of model A.
        correct_b: Per-sample correctness of model B, same samples in the same order.

    Returns:
        ``{"a_only", "b_only", "p_value"}``.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mcnemar needs the same samples for both models: {a.shape} vs {b.shape}")
    a_only = int((a & ~b).sum())
    b_only = int((~a & b).sum())
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    k = min(a_only, b_only)
    # log-space binomial tail: exact for any n
    log_half_n = -n * math.log(2.0)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + log_half_n)
        for j in range(k + 1)
    )
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2.0 * tail)}
