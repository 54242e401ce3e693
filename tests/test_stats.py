"""Statistics with known answers: intervals cover, real differences are found, ties are ties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kfedge import stats


def _rounds(rng: np.random.Generator, true_ms: float, n: int, noise: float = 0.03) -> np.ndarray:
    # per-round medians with a shared machine drift (paired) is added by the caller
    return true_ms * np.exp(rng.normal(0.0, noise, n))


def test_t_quantile_table_and_series() -> None:
    assert stats.t_quantile(4) == pytest.approx(2.776)
    assert stats.t_quantile(200) == pytest.approx(1.972, abs=2e-3)
    assert stats.t_quantile(10, 0.90) == pytest.approx(1.812, abs=5e-3)
    assert stats._z(0.95) == pytest.approx(1.959964, abs=1e-5)


def test_true_five_percent_difference_is_found() -> None:
    rng = np.random.default_rng(0)
    drift = np.exp(rng.normal(0, 0.05, 9))  # the machine's round-to-round drift, shared
    base = _rounds(rng, 10.0, 9, 0.01) * drift
    cand = _rounds(rng, 9.5, 9, 0.01) * drift
    est = stats.ratio_estimate(cand, base)
    assert 0.93 < est.ratio < 0.97
    assert est.high < 1.0
    assert stats.compare_ratio(est) == "faster"
    assert stats.compare_ratio(stats.ratio_estimate(base, cand)) == "slower"


def test_zero_difference_is_a_tie() -> None:
    rng = np.random.default_rng(1)
    ties = 0
    for _ in range(50):
        drift = np.exp(rng.normal(0, 0.05, 7))
        base = _rounds(rng, 10.0, 7, 0.02) * drift
        cand = _rounds(rng, 10.0, 7, 0.02) * drift
        ties += stats.compare_ratio(stats.ratio_estimate(cand, base)) == "tie"
    assert ties >= 47  # 95 % intervals: at most a few false calls out of 50


def test_difference_inside_the_practical_threshold_is_a_tie() -> None:
    base = np.full(7, 10.0) * (1 + np.linspace(-1e-4, 1e-4, 7))
    cand = base * 0.99  # 1 % faster, measured with almost no noise
    est = stats.ratio_estimate(cand, base)
    assert est.high < 1.0
    assert stats.compare_ratio(est, practical=0.02) == "tie"
    assert stats.compare_ratio(est, practical=0.0) == "faster"


def test_ratio_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(200):
        drift = np.exp(rng.normal(0, 0.05, 6))
        est = stats.ratio_estimate(
            _rounds(rng, 8.0, 6, 0.03) * drift, _rounds(rng, 10.0, 6, 0.03) * drift
        )
        covered += est.low <= 0.8 <= est.high
    assert 180 <= covered <= 200  # nominal 95 %


def test_ratio_estimate_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        stats.ratio_estimate([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        stats.ratio_estimate([0.0], [1.0])


def test_median_ci_order_statistics() -> None:
    x = np.arange(1, 21, dtype=float)  # n=20: 95 % interval is [x_(6), x_(15)]
    assert stats.median_ci(x) == (6.0, 15.0)
    assert stats.median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)  # too few values: the range


def test_wilson_interval() -> None:
    low, high = stats.wilson_interval(95, 100)
    assert low == pytest.approx(0.8882, abs=1e-3)
    assert high == pytest.approx(0.9785, abs=1e-3)
    assert stats.wilson_interval(0, 10)[0] == 0.0


def test_mcnemar_exact() -> None:
    a = np.array([True] * 90 + [True] * 8 + [False] * 2)
    b = np.array([True] * 90 + [False] * 8 + [True] * 2)
    res = stats.mcnemar(a, b)
    assert (res["a_only"], res["b_only"]) == (8, 2)
    expected = 2 * sum(math.comb(10, k) for k in range(3)) / 2**10
    assert res["p_value"] == pytest.approx(expected)
    assert stats.mcnemar(a, a)["p_value"] == 1.0
    big = stats.mcnemar(np.r_[np.ones(600, bool), np.zeros(400, bool)], np.ones(1000, bool))
    assert big["p_value"] < 1e-100
