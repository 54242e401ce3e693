"""Verdicts over many candidates: family-wise control, and reasons that never contradict their
intervals (simulated timings; nothing is timed)."""

from __future__ import annotations

import numpy as np
import pytest
from timings_kit import evaluation, session

from kfedge import stats
from kfedge.evaluation import SampleCorrectness
from kfedge.select import select
from kfedge.sidebyside import SideBySide


def _simulate(rng: np.random.Generator, true_ms: dict[str, float], rounds: int = 5) -> SideBySide:
    """Interleaved rounds: a drift every model shares, and each model's own noise per round."""
    drift = np.exp(rng.normal(0.0, 0.10, rounds))
    return session(
        {n: list(ms * drift * np.exp(rng.normal(0.0, 0.03, rounds))) for n, ms in true_ms.items()}
    )


def _evals(names: list[str]) -> list[dict]:
    out = [evaluation("fp32-tflite", "fp32", 0.990, 10.0, 80_000)]
    out += [evaluation(n, "ptq-int8", 0.990, 10.0, 20_000 + i) for i, n in enumerate(names)]
    return out


@pytest.mark.parametrize("n", [1, 5, 10, 20])
def test_equal_speed_candidates_are_called_faster_in_at_most_5_percent_of_runs(n: int):
    """The property of the issue: N candidates as fast as the baseline, 5 rounds; before, one
    was called faster in 15-21 % of the runs with 10-16 candidates."""
    rng = np.random.default_rng(1000 + n)
    names = [f"c{i}" for i in range(n)]
    evals = _evals(names)
    runs, called, naive = 300, 0, 0
    for _ in range(runs):
        sbs = _simulate(rng, {"fp32-tflite": 10.0, **dict.fromkeys(names, 10.0)})
        res = select(evals, {"tie_within": 0.0}, timings=sbs)
        verdicts = [c["latency"]["verdict"] for c in res["candidates"]]
        called += "faster" in verdicts
        if res["selected"] != "fp32-tflite":  # chosen as smaller among ties, never "faster"
            sel = next(c for c in res["candidates"] if c["name"] == res["selected"])
            assert ("(faster)" in res["reason"]) == (sel["latency"]["verdict"] == "faster")
        # what one 95 % interval per candidate said (the rule before)
        naive += any(
            stats.compare_ratio(sbs.ratio(m, "fp32-tflite"), 0.0) == "faster" for m in names
        )
    assert called / runs <= 0.05, (n, called / runs)
    if n >= 10:
        assert naive / runs > 0.08  # the simulation does provoke the error the rule prevents


def _consistent(word: str, low: float, high: float) -> bool:
    if word == "faster" or word.startswith("faster by under"):
        return high < 1.0
    if word == "slower" or word.startswith("slower by under"):
        return low > 1.0
    return word == "tied" and low <= 1.0 <= high


def test_every_verdict_agrees_with_the_interval_printed_beside_it():
    """Random timings and accuracies: each evidence row's verdict against the selected one is
    read from its interval, every candidate ranked after the selected one's tier is really
    slower than it, and every verdict against the baseline agrees with its interval."""
    rng = np.random.default_rng(5)
    for trial in range(150):
        k = int(rng.integers(2, 9))
        names = [f"c{i}" for i in range(k)]
        true = {"fp32-tflite": 10.0, **{n: float(10 * rng.uniform(0.5, 1.2)) for n in names}}
        sbs = _simulate(rng, true, rounds=int(rng.integers(3, 9)))
        evals = _evals(names)
        for e in evals[1:]:
            e["accuracy"] = float(rng.choice([0.97, 0.98, 0.99]))
        res = select(evals, {"tie_within": float(rng.choice([0.0, 0.02]))}, timings=sbs)
        tier0 = {c["name"] for c in res["candidates"] if c["latency_tier"] == 0}
        for row in res["evidence"]:
            low, high = row["ratio_ci"]
            assert low <= row["ratio"] <= high
            assert _consistent(row["verdict"], low, high), (trial, row)
            if row["passed"] and row["name"] not in tier0:
                assert row["verdict"] == "slower", (trial, row)
        for c in res["candidates"]:
            lat = c["latency"]
            if lat["verdict"] in ("faster", "slower"):
                assert _consistent(lat["verdict"], *lat["ratio_ci"]), (trial, c)
            elif lat["verdict"] == "tie":
                assert lat["ratio_ci"][0] <= 1.0 <= lat["ratio_ci"][1] or (
                    abs(lat["ratio"] - 1.0) <= res["goals"]["tie_within"]
                )


def _correct(bits: list[bool]) -> dict:
    arr = np.asarray(bits)
    return SampleCorrectness.from_arrays(arr, np.zeros(arr.size, int), "eval").model_dump()


def test_an_accuracy_difference_mcnemar_cannot_tell_from_noise_is_a_tie():
    """360 samples: one image (0.28 points) decided among latency ties before; now it is a tie
    and the smaller candidate wins; a real difference (McNemar p < 0.05) still decides."""
    base = [True] * 350 + [False] * 10
    near = [True] * 349 + [False] * 11  # one image less: p = 1
    sbs = _simulate(np.random.default_rng(3), {"fp32-tflite": 10.0, "a": 7.0, "b": 7.0})
    evals = [
        evaluation("fp32-tflite", "fp32", 350 / 360, 10.0, 80_000, sample_correct=_correct(base)),
        evaluation("a", "qat-int8", 350 / 360, 7.0, 30_000, sample_correct=_correct(base)),
        evaluation("b", "ptq-int8", 349 / 360, 7.0, 20_000, sample_correct=_correct(near)),
    ]
    res = select(evals, {}, timings=sbs)
    assert res["selected"] == "b"  # tied on accuracy within noise: the smaller
    assert "accuracy -0.3 pts (not significant, McNemar p 1)" in res["reason"]
    worse = [True] * 330 + [False] * 30  # 20 images worse: p < 0.001
    evals[2] = evaluation("b", "ptq-int8", 330 / 360, 7.0, 20_000, sample_correct=_correct(worse))
    res = select(evals, {"max_accuracy_drop": 0.1}, timings=sbs)
    assert res["selected"] == "a"
    row = next(r for r in res["evidence"] if r["name"] == "b")
    assert row["why"] == "less accurate than a" and row["mcnemar_p"] < 0.001
    # the accuracy goal says whether the drop is significant
    res = select(evals, {"max_accuracy_drop": 0.01}, timings=sbs)
    [goal] = next(c for c in res["candidates"] if c["name"] == "b")["failed_goals"]
    assert goal.startswith("accuracy drop 5.6 pts > 1.0 pts allowed") and "; significant" in goal


def test_intervals_are_labelled_with_their_real_coverage():
    sbs = _simulate(np.random.default_rng(2), {"fp32-tflite": 10.0, "a": 7.0, "b": 9.0, "c": 8.0})
    res = select(_evals(["a", "b", "c"]), {}, timings=sbs)
    assert "ratio intervals: simultaneous 95 % over 3 candidates (each 98.33 %)" in res["reason"]
    assert "p50 intervals: 93.75 % (the range of 5 rounds; more rounds for 95 %)" in res["reason"]
    assert stats.median_ci_coverage(6) >= 0.95
