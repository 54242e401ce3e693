"""The comparison report: Pareto front, report.json keys, Markdown and HTML content."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kfedge.errors import InvalidInputError
from kfedge.report import SEEDS_HEADER, build_report, pareto_front, print_summary, report_from_files
from kfedge.select import select


def ev(name: str, technique: str, acc: float, p50: float, size: int, fmt: str = "tflite"):
    return {
        "name": name,
        "technique": technique,
        "format": fmt,
        "accuracy": acc,
        "top5": 1.0,
        "latency_ms": {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "mean": p50, "runs": 200},
        "size_bytes": size,
        "size_gzip_bytes": int(size * 0.8),
        "sparsity": 0.0,
        "threads": 2,
        "classes": ["0", "1"],
        "confusion_matrix": [[9, 1], [0, 10]],
        "machine": {"arch": "x86_64", "cpu": "test cpu", "cpu_count": 2},
    }


@pytest.fixture
def evals() -> list[dict[str, Any]]:
    return [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ptq-int8", "ptq-int8", 0.970, 4.0, 22_000),
        ev("ptq-fp16", "ptq-fp16", 0.989, 9.0, 41_000),
        ev("qat-int8", "qat-int8", 0.988, 4.5, 22_500),
        ev("<script>alert(1)</script>", "prune>ptq-dynamic", 0.95, 12.0, 30_000),
    ]


def test_pareto_front_on_hand_made_points():
    pts = [
        ("a", 0.90, 1.0),  # fastest
        ("b", 0.95, 2.0),  # front
        ("c", 0.94, 3.0),  # dominated by b
        ("d", 0.99, 5.0),  # most accurate
        ("e", 0.99, 6.0),  # same accuracy as d, slower: dominated
        ("f", 0.90, 1.0),  # equal to a: neither dominates the other
    ]
    assert pareto_front(pts) == ["a", "f", "b", "d"]
    assert pareto_front([("x", 0.5, 1.0)]) == ["x"]


def test_report_json_has_every_candidate_and_required_keys(tmp_path, evals):
    sel = select(evals, {"max_accuracy_drop": 0.01})
    paths = build_report(evals, tmp_path, selection=sel, target="cpu-amd64")
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "report.html"}
    rep = json.loads(paths["json"].read_text())
    for key in (
        "baseline",
        "selected",
        "candidates",
        "goals",
        "target",
        "machine",
        "threads",
        "created",
        "pareto_front",
        "summary",
    ):
        assert key in rep, key
    assert rep["baseline"] == "fp32-tflite"
    assert rep["selected"] == "qat-int8"
    assert rep["target"] == "cpu-amd64"
    assert [c["name"] for c in rep["candidates"]] == [e["name"] for e in evals]
    for c in rep["candidates"]:
        for key in (
            "name",
            "technique",
            "format",
            "accuracy",
            "size_bytes",
            "size_gzip_bytes",
            "passed_goals",
            "failed_goals",
        ):
            assert key in c, key
        assert {"p50", "p90", "p99"} <= set(c["latency_ms"])
        assert isinstance(c["passed_goals"], bool)
    by = {c["name"]: c for c in rep["candidates"]}
    assert by["ptq-int8"]["passed_goals"] is False
    assert by["ptq-int8"]["failed_goals"] == [
        "accuracy drop 2.0 pts > 1.0 pts allowed (0.9700 vs baseline 0.9900)"
    ]
    assert by["qat-int8"]["latency_ratio"] == pytest.approx(0.45)
    assert by["ptq-fp16"]["accuracy_delta_pts"] == pytest.approx(-0.1)
    assert rep["pareto_front"] == ["ptq-int8", "qat-int8", "ptq-fp16", "fp32-tflite"]
    s = rep["summary"]
    assert (s["ptq"], s["qat"]) == ("ptq-fp16", "qat-int8")  # best-ranked of each group
    assert s["size_optimized_bytes"] == 22_500  # the selected candidate


def test_markdown_has_the_seeds_table_and_deltas(tmp_path, evals):
    sel = select(evals, {"max_accuracy_drop": 0.01})
    md = build_report(evals, tmp_path, selection=sel)["markdown"].read_text()
    assert "| " + " | ".join(SEEDS_HEADER) + " |" in md
    assert (
        "| fp32-tflite | 0.9900 | 0.9890 | 0.9880 | 10.000 | 9.000 | 4.500 | 0.080 | 0.022 |" in md
    )
    assert "| qat-int8 (selected) | qat-int8 | tflite | 0.9900 | 0.9880 | -0.20 |" in md
    assert "0.45x" in md
    assert "&lt;script&gt;" in md and "<script>" not in md
    assert "**ptq-int8**: accuracy drop 2.0 pts > 1.0 pts allowed" in md


def test_html_is_self_contained_and_escaped(tmp_path, evals):
    sel = select(evals, {"max_accuracy_drop": 0.01})
    html = build_report(evals, tmp_path, selection=sel)["html"].read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # nothing fetched from anywhere: no src/href at all, no @import / url()
    assert not re.search(r"""\s(src|href)\s*=""", html)
    assert "@import" not in html and "url(" not in html
    assert html.count('<svg class="chart"') == 1 and 'class="pareto"' in html
    assert html.count('class="point baseline"') == 1
    assert html.count('<circle class="selected"') == 1
    assert html.count('<tr class="selected"') == 1
    assert '<table id="candidates">' in html
    # candidates + the summary row + the selection's evidence (the others against qat-int8)
    assert html.count("<tr class=") == len(evals) + 1 + len(evals) - 1
    assert '<table id="evidence">' in html
    assert 'id="failed-goals"' in html
    assert "the fastest of 3 candidate(s)" in html


def test_report_without_selection(tmp_path, evals):
    rep = json.loads(build_report(evals, tmp_path)["json"].read_text())
    assert rep["selected"] is None and rep["goals"] is None
    assert all(c["passed_goals"] and c["failed_goals"] == [] for c in rep["candidates"])


def test_report_refuses_bad_input(tmp_path, evals):
    with pytest.raises(InvalidInputError, match="no evaluations given"):
        build_report([], tmp_path / "r")
    sel = select(evals[:2])
    with pytest.raises(InvalidInputError, match="without an evaluation"):
        build_report(evals[2:] + [evals[0]], tmp_path / "r", selection=sel)
    assert not (tmp_path / "r").exists()


def test_print_summary(tmp_path, evals):
    sel = select(evals, {"max_accuracy_drop": 0.01})
    text = print_summary(build_report(evals, tmp_path, selection=sel)["json"])
    lines = text.splitlines()
    assert len(lines) == 1 + len(evals) + 4
    assert lines[4].startswith("*  qat-int8")
    assert "0.45x" in lines[4]
    assert "FAIL: accuracy drop 2.0 pts" in lines[2]
    assert lines[-3].startswith("Latency: single measurements")
    assert lines[-2] == "selected: qat-int8 (*)"


def test_report_from_files(tmp_path, evals):
    files = []
    for e in evals:
        f = tmp_path / f"{len(files)}.json"
        f.write_text(json.dumps(e))
        files.append(f)
    sel_file = tmp_path / "sel.json"
    sel_file.write_text(json.dumps(select(evals, {"max_accuracy_drop": 0.01})))
    out = tmp_path / "out"
    res = report_from_files(
        files,
        files[0],
        sel_file,
        out / "r.json",
        out / "r.md",
        out / "r.html",
        title="T",
        target="cpu-arm64",
    )
    assert res["report"]["title"] == "T"
    assert len(res["report"]["candidates"]) == len(evals)  # baseline not doubled
    assert res["confusion"]["name"] == "qat-int8"
    assert res["metrics"]["selected_latency_ratio"] == pytest.approx(0.45)
    assert res["metrics"]["passing"] == 3.0
    assert res["report_metadata"] == {
        "selected": "qat-int8",
        "baseline": "fp32-tflite",
        "latency_measured_on": "x86-64",  # the evaluations' machine, not the arm64 target's
        "latency_on_target": False,
    }
    assert json.loads((out / "r.json").read_text()) == res["report"]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]  # atomic writes
    assert Path(out / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_summary_groups_technique_chains(tmp_path):
    evals = [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("pruned", "prune", 0.990, 9.0, 80_000),  # no quantization: in no group
        ev("chain", "prune>cluster>ptq-int8", 0.985, 3.0, 20_000),
        ev("chain-qat", "prune>qat-int8", 0.987, 3.5, 21_000),
    ]
    rep = json.loads(build_report(evals, tmp_path)["json"].read_text())
    assert (rep["summary"]["ptq"], rep["summary"]["qat"]) == ("chain", "chain-qat")


def test_evaluations_and_report_rows_from_typed_evaluations(tmp_path, evals):
    from kfedge.evaluation import Evaluation

    typed = [Evaluation.model_validate(e) for e in evals]
    sel = select(typed, {"max_accuracy_drop": 0.01})
    a = json.loads(build_report(typed, tmp_path / "a", selection=sel)["json"].read_text())
    b = json.loads(build_report(evals, tmp_path / "b", selection=sel)["json"].read_text())
    assert {**a, "created": ""} == {**b, "created": ""}


# --------------------------------------------------------------- side-by-side timings
def _timed_case():
    """Evaluations with per-sample records and ISA settings, and SYNTHETIC timings."""
    import numpy as np
    from timings_kit import evaluation, make_timings

    from kfedge.evaluation import SampleCorrectness

    y = np.arange(200) % 10
    base_ok = np.ones(200, bool)
    base_ok[:4] = False
    int8_ok = base_ok.copy()
    int8_ok[10:22] = False

    def rec(ok):
        return SampleCorrectness.from_arrays(ok, y, "eval").to_dict()

    st = {"int8_settings": {"reduce_range": True, "isa": "x86-64", "reason": "no VNNI known"}}
    evals = [
        evaluation("fp32-tflite", "fp32", 0.98, 7.25, 80_000, num_samples=200,
                   sample_correct=rec(base_ok)),
        evaluation("ptq-int8", "ptq-int8", 0.92, 14.99, 22_000, num_samples=200,
                   sample_correct=rec(int8_ok)),
        evaluation("onnx-int8-static", "onnx-int8-static", 0.975, 9.0, 23_000, fmt="onnx",
                   num_samples=200, candidate_stats=st),
        evaluation("keras", "baseline", 0.98, 3.0, 300_000, fmt="keras"),
    ]  # fmt: skip
    runtime = {
        "onnx-int8-static": {
            "providers": ["CPUExecutionProvider"],
            "requested_providers": ["OpenVINOExecutionProvider"],
            "fallback_to_cpu": True,
        }
    }
    timings = make_timings(
        {"fp32-tflite": 10.0, "ptq-int8": 7.1, "onnx-int8-static": 7.2},
        skipped={"keras": "keras model: timed through its exported FP32 reference"},
        runtime=runtime,
    )
    return evals, timings


def test_report_with_timings_carries_intervals_verdicts_and_the_measurement(tmp_path):
    evals, timings = _timed_case()
    sel = select(evals, {"max_accuracy_drop": 0.1}, timings=timings)
    paths = build_report(evals, tmp_path, selection=sel, timings=timings)
    rep = json.loads(paths["json"].read_text())
    assert rep["latency_source"] == "side-by-side"
    m = rep["measurement"]
    assert (m["rounds"], m["threads"], m["usable_cpus"]) == (8, 2, 2)
    assert m["cpus_source"] == "cgroup cpu quota" and m["isa"] == ["avx2"]
    assert m["cpu"] == "Test CPU @ 2GHz" and m["spread"]["median"] > 0
    assert rep["threads"] == 2
    by = {r["name"]: r for r in rep["candidates"]}
    int8 = by["ptq-int8"]
    # the timings' figures, not the evaluation's rough 14.99 ms
    assert int8["latency_ms"]["p50"] == timings.models["ptq-int8"].p50_ms
    assert int8["latency_ms"]["p50_ci"] == list(timings.models["ptq-int8"].p50_ci_ms)
    assert int8["evaluation_latency_p50_ms"] == 14.99
    assert int8["latency_ratio_ci"][0] < int8["latency_ratio"] < int8["latency_ratio_ci"][1] < 1
    assert int8["latency_verdict"] == "faster" and int8["latency_source"] == "side-by-side"
    assert int8["accuracy_ci"] == pytest.approx([0.8740, 0.9502], abs=1e-4)
    assert int8["mcnemar"]["b_only"] == 12 and int8["mcnemar"]["p_value"] < 0.001
    assert by["fp32-tflite"]["latency_verdict"] == "baseline"
    onnx = by["onnx-int8-static"]
    assert onnx["cpu_fallback"] is True and onnx["mcnemar"] is None
    assert onnx["int8_isa"]["matches"] is True
    assert by["keras"]["timing_skipped"].startswith("keras model")
    assert by["keras"]["latency_ratio"] is None and by["keras"]["latency_verdict"] is None
    assert rep["selected"] == "onnx-int8-static"  # tied with ptq-int8, more accurate

    md = paths["markdown"].read_text()
    assert "Accuracy [95% CI] | Δ acc (pts) | McNemar p |" in md
    assert (
        "Latency p50 [CI] (ms) | p90 | p99 | Latency vs original [simultaneous 95% CI] | Verdict |"
        in md
    )
    r = int8["latency_ratio_ci"]
    assert f"| {int8['latency_ratio']:.2f}x [{r[0]:.2f}, {r[1]:.2f}] | faster |" in md
    assert "| 0.9200 [0.8740, 0.9502] | -6.00 | 0.000488 (+0/-12) |" in md
    assert "| onnx-int8-static (selected) (CPU) |" in md
    assert (
        "2 thread(s) of 2 usable CPU(s) (limited by cgroup cpu quota); node CPU: Test CPU @ "
        "2GHz (x86_64), ISA flags: avx2" in md
    )
    assert "## Not timed side by side" in md and "- keras: keras model: timed through" in md
    assert (
        "- onnx-int8-static: settings for x86-64, extensions not stated (VNNI not assumed) "
        "(reduce_range on); this node: x86-64 AVX2, no VNNI: match" in md
    )
    assert "## CPU instead of the accelerator" in md
    assert "providers: CPUExecutionProvider (asked for OpenVINOExecutionProvider)" in md
    assert "The figures of onnx-int8-static are the CPU's" in md  # in the selection reason

    html = paths["html"].read_text()
    assert html.count('class="errorbar"') == 3  # one per timed candidate, not the skipped one
    assert 'id="measurement"' in html and "limited by cgroup cpu quota" in html
    assert "0.000488 (+0/-12)" in html and "(selected) (CPU)" in html
    assert not re.search(r"""\s(src|href)\s*=""", html) and "url(" not in html

    text = print_summary(paths["json"])
    assert "onnx-int8-static (CPU)" in text and "faster" in text
    assert "Latency: side by side, 8 interleaved rounds" in text


def test_report_from_files_with_timings_and_old_report_files(tmp_path):
    from kfedge import sidebyside

    evals, timings = _timed_case()
    files = []
    for e in evals:
        files.append(tmp_path / f"{e['name']}.json")
        files[-1].write_text(json.dumps(e))
    tpath = sidebyside.save(timings, tmp_path / "timings.json")
    sel = select(evals, {"max_accuracy_drop": 0.1}, timings=timings)
    (tmp_path / "sel.json").write_text(json.dumps(sel))
    out = tmp_path / "out"
    res = report_from_files(
        files[1:], files[0], tmp_path / "sel.json", out / "r.json", out / "r.md",
        out / "r.html", timings_path=tpath,
    )  # fmt: skip
    row = next(r for r in res["report"]["candidates"] if r["name"] == "onnx-int8-static")
    assert res["metrics"]["selected_latency_ratio"] == pytest.approx(row["latency_ratio"])
    assert res["metrics"]["selected_latency_ratio_low"] == pytest.approx(row["latency_ratio_ci"][0])
    assert res["metrics"]["selected_latency_p50_ms"] == row["latency_ms"]["p50"]
    # a missing name is a clear error, never a positional match
    with pytest.raises(InvalidInputError, match=r"no entry for \['extra'\]"):
        extra = tmp_path / "extra.json"
        extra.write_text(json.dumps({**evals[1], "name": "extra"}))
        report_from_files(
            [*files[1:], extra], files[0], None, out / "x.json", out / "x.md", out / "x.html",
            timings_path=tpath,
        )  # fmt: skip
    # a report.json written before intervals existed still prints
    old = json.loads((out / "r.json").read_text())
    for key in ("measurement", "latency_source"):
        old.pop(key)
    for r in old["candidates"]:
        for key in list(r):
            if key.startswith(("latency_ratio_", "latency_verdict", "accuracy_ci", "mcnemar")):
                r.pop(key)
        r.pop("cpu_fallback")
        r["latency_ms"].pop("p50_ci")
    text = print_summary(old)
    assert "selected: onnx-int8-static (*)" in text
    assert "Latency: single measurements" in text
