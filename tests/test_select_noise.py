"""Noise-aware selection on SYNTHETIC side-by-side timings with known answers (nothing is timed).

The evaluations' own rough latencies deliberately disagree with the timings: when timings are
given, only they may decide.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from timings_kit import evaluation as ev
from timings_kit import make_timings

from kfedge import sidebyside
from kfedge.errors import InvalidInputError
from kfedge.select import select, select_from_files


def cand(res: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in res["candidates"] if c["name"] == name)


def _side_by_side(
    p50s: dict[str, float], evals: list[dict[str, Any]], name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Select with side-by-side timings of ``p50s``; the result and ``name``'s latency."""
    res = select(evals, {}, timings=make_timings(p50s))
    return res, cand(res, name)["latency"]


def test_a_true_5_percent_difference_is_found():
    # the evaluations' rough figures say the opposite (int8 timed while a neighbour trained)
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 7.25, 80_000),
        ev("ptq-int8", "ptq-int8", 0.990, 14.99, 22_000),
    ]
    res, lat = _side_by_side({"fp32-tflite": 10.0, "ptq-int8": 9.5}, evals, "ptq-int8")
    assert lat["verdict"] == "faster" and lat["source"] == "side-by-side"
    assert lat["ratio_ci"][1] < 1.0 and lat["ratio"] == pytest.approx(0.95, abs=0.01)
    assert res["selected"] == "ptq-int8"
    assert res["reason"].startswith("Selected ptq-int8, the fastest of 2 candidate(s) meeting")
    assert (
        "0.95x [" in res["reason"]
        and "the baseline fp32-tflite's latency (faster)" in res["reason"]
    )
    assert res["latency_source"] == "side-by-side"
    # without the timings the rough single measurements decide, as before, and say so
    old = select(evals, {})
    assert old["selected"] == "fp32-tflite" and old["latency_source"] == "evaluation"
    assert "single measurements" in old["reason"]


def test_a_0_percent_difference_is_a_tie_and_accuracy_decides():
    # a dense pruned copy: same arithmetic, a hair less accurate, rough p50 looks faster
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("prune-50", "prune", 0.989, 8.0, 80_000),
    ]
    res, lat = _side_by_side({"fp32-tflite": 10.0, "prune-50": 10.0}, evals, "prune-50")
    assert lat["verdict"] == "tie"
    assert lat["ratio_ci"][0] <= 1.0 <= lat["ratio_ci"][1] or abs(lat["ratio"] - 1) < 0.02
    assert cand(res, "prune-50")["latency_tier"] == cand(res, "fp32-tflite")["latency_tier"]
    assert res["selected"] == "fp32-tflite"  # tied on latency: the more accurate one
    assert res["reason"].startswith("Selected fp32-tflite, the most accurate, then smallest, of")
    assert "no optimized candidate met the goals and was really faster" in res["reason"]
    [row] = res["evidence"]
    assert row["name"] == "prune-50" and row["verdict"] == "tied"
    assert row["vs_selected"].startswith("1.00x [")


def test_a_three_way_tie_is_broken_by_accuracy_then_size():
    timings = make_timings({"fp32-tflite": 10.0, "a": 7.0, "b": 7.05, "c": 6.98, "d": 8.0})
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("a", "ptq-int8", 0.970, 7.0, 21_000),  # fastest by a hair, least accurate
        ev("b", "qat-int8", 0.985, 7.0, 30_000),
        ev("c", "prune>ptq-int8", 0.985, 7.0, 20_000),  # as accurate as b, smaller
        ev("d", "ptq-fp16", 0.989, 8.0, 41_000),  # really slower than the three
    ]
    res = select(evals, {}, timings=timings)
    tiers = {c["name"]: c["latency_tier"] for c in res["candidates"]}
    assert tiers["a"] == tiers["b"] == tiers["c"] == 0
    assert tiers["d"] == 1 and tiers["fp32-tflite"] == 2
    assert res["ranking"] == ["c", "b", "a", "d", "fp32-tflite"]
    assert res["selected"] == "c"
    r = res["reason"]
    assert r.startswith("Selected c, the most accurate, then smallest, of the 3 candidates tied")
    # the evidence gives ratios to the selected c, not to FP32, verdicts read from them
    rows = {e["name"]: e for e in res["evidence"]}
    assert [e["name"] for e in res["evidence"]] == ["b", "a", "d", "fp32-tflite"]
    assert rows["b"]["vs_selected"] == "1.01x [1.00, 1.02]"
    assert rows["b"]["verdict"] == "slower by under 2 % (a tie)"  # as its interval says
    assert rows["b"]["why"] == "accuracy tied, larger"
    assert rows["a"]["why"] == "less accurate than c"
    assert rows["d"]["vs_selected"].startswith("1.15x [") and rows["d"]["verdict"] == "slower"
    # objective size: the smallest wins, whatever the tie's accuracy order
    assert select(evals, {"objective": "size"}, timings=timings)["selected"] == "c"


def test_a_candidate_really_slower_than_fp32_is_never_deployed_while_fp32_qualifies():
    timings = make_timings({"fp32-tflite": 10.0, "ort-int8": 13.0, "ptq-fp16": 10.0})
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ort-int8", "onnx-int8-static", 0.990, 5.0, 21_000, fmt="onnx"),
        ev("ptq-fp16", "ptq-fp16", 0.990, 10.0, 41_000),
    ]
    res = select(evals, {"objective": "size"}, timings=timings)
    assert cand(res, "ort-int8")["latency"]["verdict"] == "slower"
    assert res["selected"] == "ptq-fp16"  # the smallest that is not really slower
    [goal] = cand(res, "ort-int8")["failed_goals"]
    assert goal.startswith("slower than the baseline fp32-tflite (1.30x [1.2")
    assert goal.endswith("the baseline meets the goals, so it is deployed before anything slower")
    row = next(e for e in res["evidence"] if e["name"] == "ort-int8")
    assert not row["passed"] and row["why"] == "fails: " + goal
    # when FP32 itself fails the goals, a slower candidate that meets them may be chosen
    res = select(evals, {"objective": "size", "max_size_mb": 0.03}, timings=timings)
    assert res["selected"] == "ort-int8"


def test_speed_up_goal_is_judged_on_the_conservative_end():
    noisy = make_timings({"fp32-tflite": 10.0, "ptq-int8": 7.9}, noise=0.04)
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ptq-int8", "ptq-int8", 0.990, 7.9, 22_000),
    ]
    lat = cand(select(evals, {}, timings=noisy), "ptq-int8")["latency"]
    assert lat["ratio"] < 0.8 < lat["ratio_ci"][1]  # 20 % at the point, not at the slow end
    res = select(evals, {"min_latency_improvement": 0.2}, timings=noisy)
    [msg] = cand(res, "ptq-int8")["failed_goals"]
    assert "at the interval's conservative end" in msg and "< 20.0 % required" in msg
    assert select(evals, {"min_latency_improvement": 0.2})["selected"] == "ptq-int8"  # rough


def test_tie_threshold_is_a_goal():
    timings = make_timings({"fp32-tflite": 10.0, "ptq-int8": 9.7})  # 3 % faster, narrow
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ptq-int8", "ptq-int8", 0.985, 9.7, 22_000),
    ]
    assert select(evals, {}, timings=timings)["selected"] == "ptq-int8"
    res = select(evals, {"tie_within": 0.05}, timings=timings)
    assert cand(res, "ptq-int8")["latency"]["verdict"] == "tie"
    assert res["selected"] == "fp32-tflite"  # a 3 % gain is noise at 5 %: accuracy decides


def test_timings_are_matched_by_name_and_missing_ones_are_errors():
    timings = make_timings({"ptq-int8": 5.0, "fp32-tflite": 10.0})  # another order
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ptq-int8", "ptq-int8", 0.985, 20.0, 22_000),
    ]
    res = select(evals, {}, timings=timings)
    assert cand(res, "ptq-int8")["latency"]["p50"] == timings.models["ptq-int8"].p50_ms
    assert res["selected"] == "ptq-int8"
    with pytest.raises(InvalidInputError, match=r"no entry for \['ptq-fp16'\]"):
        select([*evals, ev("ptq-fp16", "ptq-fp16", 0.99, 9.0, 40_000)], {}, timings=timings)
    only_int8 = make_timings({"ptq-int8": 5.0}, skipped={"fp32-tflite": "worker crashed"})
    with pytest.raises(InvalidInputError, match="the baseline 'fp32-tflite' was not timed"):
        select(evals, {}, timings=only_int8)


def test_a_candidate_skipped_by_the_benchmark_is_shown_with_its_reason_and_not_selected():
    timings = make_timings({"fp32-tflite": 10.0}, skipped={"keras": "keras model: not timed"})
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("keras", "baseline", 0.995, 1.0, 10_000, fmt="keras"),
    ]
    res = select(evals, {"formats": ["tflite", "keras"]}, timings=timings)
    c = cand(res, "keras")
    assert c["latency"]["skipped"] == "keras model: not timed"
    assert c["latency"]["source"] == "evaluation"
    assert c["failed_goals"] == [
        "not timed side by side (keras model: not timed): its latency cannot be compared "
        "with the baseline's"
    ]
    assert res["selected"] == "fp32-tflite"


def test_cpu_fallback_is_marked_in_the_reason():
    runtime = {"ptq-int8": {"delegate": None, "requested_delegate": "npu", "fallback_to_cpu": True}}
    timings = make_timings({"fp32-tflite": 10.0, "ptq-int8": 5.0}, runtime=runtime)
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ptq-int8", "ptq-int8", 0.985, 5.0, 22_000),
    ]
    res = select(evals, {}, timings=timings)
    assert cand(res, "ptq-int8")["cpu_fallback"] is True
    assert res["reason"].startswith("Selected ptq-int8, the fastest")
    assert "0.50x [0.50, 0.50] (CPU) the baseline fp32-tflite's latency (faster)" in res["reason"]
    assert "The figures of ptq-int8 are the CPU's" in res["reason"]
    # the evaluation's own record counts too
    evals[1]["runtime"] = {"format": "tflite", "fallback_to_cpu": True}
    assert select(evals, {})["candidates"][1]["cpu_fallback"] is True


def test_int8_settings_for_another_isa_are_warned():
    stats = {"int8_settings": {"reduce_range": False, "isa": "x86-64-avx512-vnni", "reason": ""}}
    timings = make_timings({"fp32-onnx": 10.0, "onnx-int8-static": 8.0})
    evals = [
        ev("fp32-onnx", "fp32", 0.990, 10.0, 80_000, fmt="onnx"),
        ev("onnx-int8-static", "onnx-int8-static", 0.96, 8, 22_000, fmt="onnx",
           candidate_stats=stats),
    ]  # fmt: skip
    [w] = select(evals, {}, timings=timings)["warnings"]
    assert w.startswith("onnx-int8-static: ONNX Runtime INT8 settings for x86-64 AVX-512 + VNNI")
    assert "this node: x86-64 AVX2, no VNNI: MISMATCH" in w


def test_select_from_files_reads_the_timings(tmp_path):
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 7.25, 80_000),
        ev("ptq-int8", "ptq-int8", 0.990, 14.99, 22_000),
    ]
    files = []
    for e in evals:
        files.append(tmp_path / f"{e['name']}.json")
        files[-1].write_text(json.dumps(e))
    tpath = sidebyside.save(make_timings({"fp32-tflite": 10.0, "ptq-int8": 9.0}), tmp_path / "t")
    res = select_from_files(files[1:], files[0], "", tmp_path / "sel.json", timings_path=tpath)
    assert res["selected"] == "ptq-int8"
    written = json.loads((tmp_path / "sel.json").read_text())
    assert written["measurement"]["rounds"] == 8 and written["measurement"]["threads"] == 2
    assert written["candidates"][1]["latency"]["verdict"] == "faster"
    res = select_from_files(files[1:], files[0], "", tmp_path / "old.json")
    assert res["selected"] == "fp32-tflite"  # the rough figures, as before
