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
    assert html.count("<tr class=") == len(evals) + 1  # candidates + the summary row
    assert 'id="failed-goals"' in html
    assert "qat-int8 is the fastest (p50) of 3 candidate(s)" in html


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
    assert len(lines) == 1 + len(evals) + 3
    assert lines[4].startswith("*  qat-int8")
    assert "0.45x" in lines[4]
    assert "FAIL: accuracy drop 2.0 pts" in lines[2]
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
    assert res["report_metadata"] == {"selected": "qat-int8", "baseline": "fp32-tflite"}
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
