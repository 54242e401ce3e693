"""End to end: the default pipeline through kfp.local, as `kfedge run` runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kfedge.local_run import run_local

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TECHNIQUES = ["ptq-int8", "onnx-int8-static", "prune"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("e2e")
    return run_local(
        techniques=",".join(TECHNIQUES),
        goals={"max_accuracy_drop": 0.02, "objective": "latency"},
        epochs=1,
        latency_runs=30,
        output_dir=out,
        quiet=True,
    )


def test_report_lists_baseline_and_every_technique(full_run: dict):
    report = json.loads(Path(full_run["report"]).read_text())
    assert report["baseline"] == "fp32-tflite"
    techniques = {c["technique"].split(">")[-1] for c in report["candidates"]}
    assert {"fp32-tflite", *TECHNIQUES} <= techniques
    for cand in report["candidates"]:
        assert 0.9 <= cand["accuracy"] <= 1.0, cand["name"]
        lat = cand["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], cand["name"]
        assert cand["size_bytes"] > cand["size_gzip_bytes"] > 0, cand["name"]
        assert isinstance(cand["passed_goals"], bool) and isinstance(cand["failed_goals"], list)
    html = Path(full_run["report"]).with_name("report.html").read_text()
    assert "<svg" in html and "fp32-tflite" in html
    assert (
        "| Model | Accuracy original |"
        in Path(full_run["report"]).with_name("report.md").read_text()
    )


def test_one_benchmark_timed_every_candidate_after_every_evaluation(full_run: dict):
    """kfp.local runs the loop's iterations concurrently; the side-by-side benchmark runs once,
    after every evaluation finished, and times every candidate and the FP32 reference."""
    report = json.loads(Path(full_run["report"]).read_text())
    timings = json.loads(Path(full_run["timings"]).read_text())
    assert sorted(timings["models"]) == sorted(c["name"] for c in report["candidates"])
    for t in timings["models"].values():
        assert len(t["rounds_p50_ms"]) == timings["rounds"] >= 3
        assert 0 < t["p50_ms"] <= t["p90_ms"] <= t["p99_ms"]
    assert 1 <= timings["threads"] <= timings["usable_cpus"]
    log = re.sub(r"\x1b\[[0-9;]*m", "", (Path(full_run["run_dir"]) / "run.log").read_text())
    events = re.findall(r"Executing task '?([\w\-]+)'?|Task '?([\w\-]+)'? finished", log)
    order = [("start", a) if a else ("end", b) for a, b in events]
    started = order.index(("start", "benchmark"))
    evaluations = [i for i, (kind, task) in enumerate(order) if task.startswith("evaluate")]
    assert len(evaluations) == 2 * (len(TECHNIQUES) + 1)  # start and end of each evaluation
    assert max(evaluations) < started  # nothing was evaluated while the benchmark ran
    assert order.count(("start", "benchmark")) == 1


def test_a_candidate_was_selected_and_the_local_endpoint_answered(full_run: dict):
    report = json.loads(Path(full_run["report"]).read_text())
    assert report["selected"] and full_run["selected"] == report["selected"]
    chosen = next(c for c in report["candidates"] if c["name"] == report["selected"])
    assert chosen["passed_goals"]
    deploy = full_run["deploy"]
    assert deploy["passed"] is True and deploy["mode"] == "local"
    assert deploy["protocols"]["v1"]["passed"] and deploy["protocols"]["v2"]["passed"]
    assert deploy["url"].startswith("http://127.0.0.1:")
    chosen = json.loads(Path(full_run["selected_model"], "candidate.json").read_text())
    assert chosen["name"] == report["selected"]


def test_goals_no_candidate_meets_skip_deploy_and_say_so(tmp_path: Path, capsys):
    result = run_local(
        techniques="ptq-dynamic",
        goals={"max_latency_ms": 1e-6},
        latency_runs=30,
        output_dir=tmp_path,
    )
    report = json.loads(Path(result["report"]).read_text())
    assert report["selected"] is None and result["deploy"] is None
    assert all(not c["passed_goals"] and c["failed_goals"] for c in report["candidates"])
    out = capsys.readouterr().out
    assert "\ndeploy skipped: no candidate met the goals" in out  # not indented by kfp.local
    assert not list(Path(result["run_dir"]).rglob("endpoint.json"))


def test_edge_evaluate_measures_given_models_of_any_format(
    fp32_tflite: Path, fp32_onnx: Path, baseline_model: Path, tmp_path: Path
):
    """edge-evaluate only measures: a .tflite baseline must not be held to the technique plan."""
    from kfp import local

    from kfedge.pipelines.edge import edge_evaluate

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    edge_evaluate(
        baseline_uri=str(fp32_tflite),
        model_uris=[str(fp32_onnx), str(baseline_model)],
        latency_runs=30,
    )
    (report_file,) = tmp_path.rglob("report/report_json")
    report = json.loads(report_file.read_text())
    # the edge node runs no TensorFlow: the Keras model was exported (FP32 TFLite) and kept
    # its name; the .tflite and .onnx models were measured as they are
    by_name = {c["name"]: c for c in report["candidates"]}
    assert by_name[report["baseline"]]["format"] == "tflite"
    keras = by_name[baseline_model.name]
    assert keras["format"] == "tflite"
    assert sorted(c["format"] for c in report["candidates"]) == ["onnx", "tflite", "tflite"]
    base = by_name[report["baseline"]]
    for cand in report["candidates"]:
        assert abs(cand["accuracy"] - base["accuracy"]) < 0.01  # the same FP32 model thrice
    (timings_file,) = tmp_path.rglob("benchmark/timings")
    assert sorted(json.loads(timings_file.read_text())["models"]) == sorted(by_name)
