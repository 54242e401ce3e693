"""The evaluate / benchmark / select / report components under kfp.local, chained in a
ParallelFor pipeline; the edge-node components without TensorFlow."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Input, Model, Output

from kfedge.candidate import Candidate, save_candidate
from kfedge.components.benchmark import benchmark
from kfedge.components.evaluate import evaluate
from kfedge.components.report import report
from kfedge.components.select import select

pytestmark = pytest.mark.e2e


@dsl.component(base_image="python:3.11")
def _import_model(path: str, model: Output[Model]):
    import json
    import os
    import shutil

    shutil.copytree(path, model.path)
    model.metadata["name"] = json.load(open(os.path.join(path, "candidate.json")))["name"]


@dsl.component(base_image="python:3.11")
def _import_dataset(path: str, dataset: Output[Dataset]):
    import shutil

    shutil.copytree(path, dataset.path)


@dsl.component(base_image="python:3.11")
def _use_chosen(model: Input[Model], marker: str):
    import json
    import os

    with open(marker, "w") as fh:
        json.dump({"files": sorted(os.listdir(model.path)), "meta": dict(model.metadata)}, fh)


@dsl.pipeline
def _pipeline(candidates: list, baseline: str, data: str, goals_json: str, marker: str):
    ds = _import_dataset(path=data)
    base = _import_model(path=baseline)
    base_ev = evaluate(model=base.outputs["model"], dataset=ds.outputs["dataset"], latency_runs=30)
    with dsl.ParallelFor(candidates) as path:
        cand = _import_model(path=path)
        ev = evaluate(model=cand.outputs["model"], dataset=ds.outputs["dataset"], latency_runs=30)
    bench = benchmark(
        baseline=base.outputs["model"],
        models=dsl.Collected(cand.outputs["model"]),
        dataset=ds.outputs["dataset"],
        rounds=3,
    ).after(ev, base_ev)
    sel = select(
        evaluations=dsl.Collected(ev.outputs["evaluation"]),
        models=dsl.Collected(cand.outputs["model"]),
        baseline_evaluation=base_ev.outputs["evaluation"],
        baseline_model=base.outputs["model"],
        timings=bench.outputs["timings"],
        goals_json=goals_json,
    )
    report(
        evaluations=dsl.Collected(ev.outputs["evaluation"]),
        baseline_evaluation=base_ev.outputs["evaluation"],
        selection=sel.outputs["selection"],
        timings=bench.outputs["timings"],
        target="cpu-amd64",
    )
    # the bool return is the output named "Output" (the task also has artifact outputs)
    with dsl.If(sel.outputs["Output"] == True):  # noqa: E712 - a KFP condition
        _use_chosen(model=sel.outputs["chosen"], marker=marker)


@pytest.fixture(scope="module")
def candidate_dirs(baseline_model, fp32_tflite, tmp_path_factory) -> dict[str, Path]:
    from kfedge import compat
    from kfedge.convert import convert_tflite

    tf = compat.tf()
    root = tmp_path_factory.mktemp("comp_cands")
    fp32 = root / "fp32-tflite"
    fp32.mkdir()
    shutil.copy(fp32_tflite, fp32 / "model.tflite")
    save_candidate(Candidate("fp32-tflite", "fp32", "tflite", "model.tflite"), fp32)
    dyn = root / "ptq-dynamic"

    def dynamic(conv):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

    convert_tflite(baseline_model, dyn / "model.tflite", dynamic)
    save_candidate(
        Candidate("ptq-dynamic", "ptq-dynamic", "tflite", "model.tflite", parent="fp32-tflite"), dyn
    )
    return {"fp32-tflite": fp32, "ptq-dynamic": dyn}


def _outputs(root: Path, task: str) -> Path:
    [run] = [p for p in root.iterdir() if p.is_dir()]
    return run / task


def _run(tmp_path: Path, candidate_dirs, sample_dataset, goals: dict) -> tuple[Path, Path]:
    root = tmp_path / "root"
    marker = tmp_path / "marker.json"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    _pipeline(
        candidates=[str(candidate_dirs["ptq-dynamic"])],
        baseline=str(candidate_dirs["fp32-tflite"]),
        data=str(sample_dataset),
        goals_json=json.dumps(goals),
        marker=str(marker),
    )
    return root, marker


def test_pipeline_selects_and_gates_deploy(tmp_path, candidate_dirs, sample_dataset):
    root, marker = _run(
        tmp_path, candidate_dirs, sample_dataset, {"max_accuracy_drop": 0.01, "objective": "size"}
    )
    sel = json.loads((_outputs(root, "select") / "selection").read_text())
    assert sel["selected"] == "ptq-dynamic"  # smallest within one point
    assert sel["deploy"] is True
    assert sorted(c["name"] for c in sel["candidates"]) == ["fp32-tflite", "ptq-dynamic"]
    timings = json.loads((_outputs(root, "benchmark") / "timings").read_text())
    assert sorted(timings["models"]) == ["fp32-tflite", "ptq-dynamic"]  # side by side, once
    used = json.loads(marker.read_text())
    assert used["files"] == ["candidate.json", "model.tflite"]
    assert used["meta"]["name"] == "ptq-dynamic" and used["meta"]["selected"] == "ptq-dynamic"

    rep_dir = _outputs(root, "report")
    rep = json.loads((rep_dir / "report_json").read_text())
    assert rep["selected"] == "ptq-dynamic" and rep["target"] == "cpu-amd64"
    assert (rep_dir / "html").read_text().startswith("<!DOCTYPE html>")
    assert "| Model | Accuracy original |" in (rep_dir / "markdown").read_text()

    ev = json.loads(next(root.glob("*/for-loop-*/evaluate-2/evaluation")).read_text())
    assert ev["latency_ms"]["runs"] == 30 and ev["memory"]["isolated"] is True
    metrics = json.loads((_outputs(root, "report") / "executor_output.json").read_text())
    arts = metrics["artifacts"]
    summary = arts["summary"]["artifacts"][0]["metadata"]
    assert summary["selected_size_ratio"] < 1.0 and summary["deploy"] == 1.0
    confusion = arts["confusion"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert len(confusion["annotationSpecs"]) == 10 and len(confusion["rows"]) == 10


def test_pipeline_with_no_passing_candidate_skips_deploy(tmp_path, candidate_dirs, sample_dataset):
    root, marker = _run(tmp_path, candidate_dirs, sample_dataset, {"max_latency_ms": 1e-6})
    sel = json.loads((_outputs(root, "select") / "selection").read_text())
    assert sel["selected"] is None and sel["deploy"] is False
    assert not marker.exists()  # the dsl.If branch did not run
    assert (_outputs(root, "select") / "chosen" / "NOT_SELECTED.txt").is_file()


def test_compiled_yaml_is_current(tmp_path):
    from kfp import compiler

    here = Path(__file__).resolve().parents[1] / "components"
    for comp in (evaluate, benchmark, select, report):
        name = comp.python_func.__name__
        out = tmp_path / f"{name}.yaml"
        compiler.Compiler().compile(comp, str(out))
        assert out.read_text() == (here / f"{name}.yaml").read_text(), (
            f"components/{name}.yaml is stale; regenerate it with `kfedge compile`"
        )


_NO_TF = "raise ImportError('no TensorFlow in the serving image')\n"


def test_edge_components_run_without_tensorflow(tmp_path, candidate_dirs, sample_dataset):
    """evaluate and benchmark run in the serving image (no TensorFlow): their library entries,
    and the benchmark's worker processes, must not import it for .tflite candidates."""
    blocker = tmp_path / "blocker"
    for mod in ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"):
        (blocker / mod).mkdir(parents=True)
        (blocker / mod / "__init__.py").write_text(_NO_TF)
    code = f"""
import json, sys
from kfedge.evaluate import evaluate_from_files
from kfedge.sidebyside import benchmark_from_files
ev = evaluate_from_files({str(candidate_dirs["ptq-dynamic"])!r}, {str(sample_dataset)!r},
                         {str(tmp_path / "ev.json")!r}, latency_runs=30, target="cpu-amd64")
sbs = benchmark_from_files([{str(candidate_dirs["fp32-tflite"])!r},
                            {str(candidate_dirs["ptq-dynamic"])!r}], {str(sample_dataset)!r},
                           {str(tmp_path / "t.json")!r}, rounds=3, target="cpu-amd64")
assert "tensorflow" not in sys.modules
print(json.dumps({{"acc": ev.accuracy, "timed": sorted(sbs.models)}}))
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["acc"] > 0.8 and got["timed"] == ["fp32-tflite", "ptq-dynamic"]
