"""Fleet runs: the plan (shared jobs, per-target goals, node groups), the compiled edge-fleet
pipeline, the fleet report, and one kfp.local run of two targets on the sample."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from kfedge.errors import ConfigError, InvalidInputError
from kfedge.fleet import (
    OFF_TARGET,
    bundle_into,
    bundled,
    node_groups,
    parse_targets,
    plan_fleet,
    service_name,
)
from kfedge.provenance import MARK, provenance
from kfedge.report_fleet import fleet_markdown, make_fleet_report
from kfedge.select import goals_for_target

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ the plan
def test_each_technique_runs_once_for_every_target_that_runs_it() -> None:
    spec = plan_fleet("cpu-arm64,intel-cpu-openvino", ["ptq-int8", "openvino-int8"])
    jobs = spec["jobs"]
    assert jobs["ptq-int8"]["targets"] == ["cpu-arm64", "intel-cpu-openvino"]
    assert jobs["openvino-int8"]["targets"] == ["intel-cpu-openvino"]  # arm64 runs no OpenVINO
    arm, intel = spec["targets"]["cpu-arm64"], spec["targets"]["intel-cpu-openvino"]
    assert arm["candidates"] == ["ptq-int8"]
    assert set(intel["candidates"]) == {"ptq-int8", jobs["openvino-int8"]["name"]}
    assert arm["baseline"] == "fp32-tflite" and intel["baseline"] == "fp32-openvino"
    assert arm["service_name"] == "kfedge-cpu-arm64"


def test_a_technique_with_other_parameters_for_a_target_runs_again_under_its_own_name() -> None:
    """ONNX Runtime INT8 takes the target's ISA: arm64 and x86 get one candidate each."""
    spec = plan_fleet("cpu-arm64,cpu-amd64", ["onnx-int8-static"])
    jobs = spec["jobs"]
    assert set(jobs) == {"onnx-int8-static", "onnx-int8-static@cpu-amd64"}
    other = jobs["onnx-int8-static@cpu-amd64"]
    assert other["params"]["isa"] != jobs["onnx-int8-static"]["params"]["isa"]
    assert other["name"] == other["params"]["name"] == "onnx-int8-static-for-cpu-amd64"
    assert spec["targets"]["cpu-amd64"]["candidates"] == ["onnx-int8-static-for-cpu-amd64"]
    assert spec["targets"]["cpu-arm64"]["candidates"] == ["onnx-int8-static"]


def test_bad_fleets_fail_before_any_work() -> None:
    with pytest.raises(ConfigError, match="no target of the fleet runs openvino-int8"):
        plan_fleet("cpu-arm64,nvidia-jetson", ["openvino-int8"])
    with pytest.raises(ConfigError, match="unknown technique"):
        plan_fleet("cpu-arm64,cpu-amd64", ["no-such"])
    with pytest.raises(ConfigError, match="named more than once"):
        parse_targets("cpu-arm64,cpu-arm64")
    with pytest.raises(ConfigError, match="at least one target"):
        parse_targets(" , ")
    with pytest.raises(ConfigError, match=r"not in the fleet"):
        plan_fleet("cpu-arm64,cpu-amd64", goals={"targets": {"nvidia-jetson": {}}})
    with pytest.raises(ConfigError, match="goals must be a JSON object"):
        plan_fleet("cpu-arm64,cpu-amd64", goals="{not json")
    with pytest.raises(ConfigError, match="max_latency_ms"):
        plan_fleet("cpu-arm64,cpu-amd64", goals={"targets": {"cpu-arm64": {"max_latency_ms": -1}}})


def test_per_target_goals_override_the_fleet_wide_ones() -> None:
    goals = {"max_accuracy_drop": 0.015, "targets": {"cpu-arm64": {"max_latency_ms": 20}}}
    assert goals_for_target(goals, "cpu-arm64") == {
        "max_accuracy_drop": 0.015,
        "max_latency_ms": 20,
    }
    assert goals_for_target(json.dumps(goals), "cpu-amd64") == {"max_accuracy_drop": 0.015}
    spec = plan_fleet("cpu-arm64,cpu-amd64", ["ptq-int8"], goals=goals)
    assert spec["targets"]["cpu-arm64"]["goals"]["max_latency_ms"] == 20
    assert "max_latency_ms" not in spec["targets"]["cpu-amd64"]["goals"]
    with pytest.raises(ConfigError, match="must map target names"):
        goals_for_target({"targets": ["cpu-arm64"]}, "cpu-arm64")


def test_cli_goal_flags_take_per_target_values() -> None:
    from kfedge.cli import goals_from_args, per_target_value

    ns = argparse.Namespace(
        max_accuracy_drop="1,cpu-arm64=2",
        max_latency_ms="cpu-arm64=20,nvidia-jetson=5",
        min_speedup=None,
        max_size_mb=None,
        objective="latency",
    )
    goals = goals_from_args(ns)
    assert goals["max_accuracy_drop"] == pytest.approx(0.01)
    assert "max_latency_ms" not in goals
    assert goals["targets"]["cpu-arm64"] == {"max_accuracy_drop": 0.02, "max_latency_ms": 20.0}
    assert goals["targets"]["nvidia-jetson"] == {"max_latency_ms": 5.0}
    assert per_target_value("4", "--max-latency-ms") == (4.0, {})
    for bad in ("fast", "cpu-arm64=x", "1,2", "a=1,a=2"):
        with pytest.raises(ConfigError, match="--max-latency-ms"):
            per_target_value(bad, "--max-latency-ms")


def test_size_goals_are_in_the_reports_mb_and_a_targets_limit_replaces_the_fleets() -> None:
    """--max-size-mb 1.5 means 1,500,000 bytes, the MB the report shows sizes in."""
    from kfedge.cli import goals_from_args
    from kfedge.select import Goals

    ns = argparse.Namespace(
        max_accuracy_drop=None,
        max_latency_ms=None,
        min_speedup=None,
        max_size_mb="1.5,cpu-arm64=0.5",
        objective="size",
    )
    goals = goals_from_args(ns)
    assert Goals(**goals_for_target(goals, "cpu-amd64")).size_limit == 1_500_000
    assert Goals(**goals_for_target(goals, "cpu-arm64")).size_limit == 500_000
    # a fleet-wide limit in bytes, a target's in MB: the target's replaces it, in either unit
    mixed = {"max_size_bytes": 9, "targets": {"a": {"max_size_mb": 1}, "b": {"max_latency_ms": 3}}}
    assert Goals(**goals_for_target(mixed, "a")).size_limit == 1_000_000
    assert Goals(**goals_for_target(mixed, "b")).size_limit == 9


def test_targets_that_may_share_a_node_are_one_group_measured_in_turn() -> None:
    """Node selectors that do not contradict each other may pick one node: never two
    benchmarks there at once. Under kfp.local everything runs here: one group."""
    sel = {
        "arm": {"kubernetes.io/arch": "arm64"},
        "jetson": {"kubernetes.io/arch": "arm64", "nvidia.com/gpu.present": "true"},
        "x86": {"kubernetes.io/arch": "amd64"},
        "any": {},
    }
    assert node_groups({k: sel[k] for k in ("arm", "jetson", "x86")}, True) == [
        ["arm", "jetson"],
        ["x86"],
    ]
    assert node_groups(sel, True) == [["arm", "jetson", "x86", "any"]]  # "any" links them
    assert node_groups({k: sel[k] for k in ("arm", "x86")}, False) == [["arm", "x86"]]
    spec = plan_fleet("cpu-arm64,intel-cpu-openvino", ["ptq-int8"], cluster=True)
    assert sorted(map(sorted, spec["groups"].values())) == [["cpu-arm64"], ["intel-cpu-openvino"]]
    assert service_name("nvidia-jetson") == "kfedge-nvidia-jetson"


def test_bundle_names_each_item_and_refuses_two_of_one_name(tmp_path: Path) -> None:
    from kfedge.candidate import Candidate, save_candidate

    items = []
    for name in ("ptq-int8", "ptq-fp16"):
        d = tmp_path / "in" / name
        d.mkdir(parents=True)
        (d / "model.tflite").write_bytes(b"x")
        save_candidate(Candidate(name, "ptq-int8", "tflite", "model.tflite"), d)
        items.append(d)
    report = tmp_path / "in" / "report_json"
    report.write_text(json.dumps({"target": "cpu-arm64", "candidates": []}))
    out = tmp_path / "bundle"
    bundle_into([*items, report], out)
    got = bundled(out)
    assert set(got) == {"ptq-int8", "ptq-fp16", "cpu-arm64"}
    assert (got["ptq-int8"] / "model.tflite").is_file() and got["cpu-arm64"].suffix == ".json"
    with pytest.raises(InvalidInputError, match="two bundled items are named 'ptq-int8'"):
        bundle_into([items[0], items[0]], tmp_path / "again")


def test_a_run_that_says_it_measured_off_target_is_off_target_whatever_the_cpu() -> None:
    here = {"machine": "x86_64", "cpu": "an x86 box", "isa": ["avx2"]}
    assert provenance("cpu-amd64", here)["on_target"] is True
    off = provenance("cpu-amd64", {**here, "off_target": OFF_TARGET})
    assert off["on_target"] is False and "not the target hardware" in off["note"]


# ------------------------------------------------------------------------------ the report
def _row(name: str, acc: float, p50: float, ratio: float | None, passed: bool = True) -> dict:
    return {
        "name": name,
        "accuracy": acc,
        "accuracy_delta_pts": 0.0,
        "latency_ms": {"p50": p50},
        "latency_ratio": ratio,
        "size_bytes": 40_000,
        "passed_goals": passed,
    }


def test_fleet_report_marks_every_figure_measured_off_target() -> None:
    spec = plan_fleet("cpu-arm64,intel-cpu-openvino", ["ptq-int8", "openvino-int8"])
    ov = spec["jobs"]["openvino-int8"]["name"]
    reports = {
        "cpu-arm64": {
            "target": "cpu-arm64",
            "baseline": "fp32-tflite",
            "selected": "ptq-int8",
            "deploy": True,
            "reason": "Selected ptq-int8.",
            "provenance": {"on_target": False, "note": "Not measured on the target's hardware"},
            "candidates": [_row("fp32-tflite", 0.98, 1.0, 1.0), _row("ptq-int8", 0.98, 0.5, 0.5)],
        },
        "intel-cpu-openvino": {
            "target": "intel-cpu-openvino",
            "baseline": "fp32-openvino",
            "selected": ov,
            "deploy": True,
            "reason": f"Selected {ov}.",
            "provenance": {"on_target": True, "note": ""},
            "candidates": [
                _row("fp32-openvino", 0.98, 1.0, 1.0),
                _row("ptq-int8", 0.97, 0.9, 0.9, passed=False),
                _row(ov, 0.98, 0.4, 0.4),
            ],
        },
    }
    rep = make_fleet_report(reports, spec)
    md = fleet_markdown(rep)
    assert "→ InferenceService kfedge-cpu-arm64" in md and "kfedge-intel-cpu-openvino" in md
    table = md.split("## Every candidate on every target")[1]
    lines = {
        ln.split("|")[1].strip(): ln.split("|")[2:-1]
        for ln in table.splitlines()
        if ln.startswith("| ")
    }
    arm_cells = lines["ptq-int8"][:4]
    assert all(MARK in c for c in arm_cells) and all(c.startswith(" **") for c in arm_cells)
    assert not any(MARK in c for c in lines["ptq-int8"][4:]) and "✗" in lines["ptq-int8"][4]
    assert [c.strip() for c in lines[ov][:4]] == ["-"] * 4  # arm64 does not run it
    assert [c.strip() for c in lines["fp32-openvino"][:4]] == ["-"] * 4
    with pytest.raises(InvalidInputError, match="no report for target"):
        make_fleet_report({"cpu-arm64": reports["cpu-arm64"]}, spec)


# ------------------------------------------------------------------- the compiled pipeline
def _fleet_yaml() -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all((ROOT / "pipelines" / "edge-fleet.yaml").read_text()))
    return docs[0], docs[1]


def test_compiled_fleet_measures_on_the_target_node_one_target_of_a_group_at_a_time() -> None:
    from kfedge._version import COMPONENT_IMAGE, SERVING_IMAGE

    spec, platform = _fleet_yaml()
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) >= {"exec-measure", "exec-plan-fleet"}
    placed = {ex for ex, cfg in executors.items() if "nodeSelector" in cfg}
    assert placed == {"exec-measure"}
    cfg = executors["exec-measure"]
    ref = cfg["nodeSelector"]["nodeSelectorJson"]["taskOutputParameter"]
    assert ref == {"outputParameterKey": "node_selector", "producerTask": "place-target"}
    for ex, c in spec["deploymentSpec"]["executors"].items():
        want = SERVING_IMAGE if ex in placed else COMPONENT_IMAGE
        assert c["container"]["image"] == want, ex
    res = spec["deploymentSpec"]["executors"]["exec-measure"]["container"]["resources"]
    assert res["resourceCpuRequest"] == res["resourceCpuLimit"]
    assert res["resourceMemoryRequest"] == res["resourceMemoryLimit"]
    groups = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]
    assert groups["for-loop-3"]["iteratorPolicy"] == {"parallelismLimit": 1}
    inner = spec["components"]["comp-for-loop-3"]["dag"]["tasks"]
    assert {"place-target", "export-fp32", "measure", "decide", "condition-4"} <= set(inner)
    # deployed only when asked for (--no-deploy: deploy_chosen false), then only a choice
    asked = inner["condition-4"]["triggerPolicy"]["condition"]
    assert asked == "inputs.parameter_values['pipelinechannel--deploy_chosen'] == true"
    met = spec["components"]["comp-condition-4"]["dag"]["tasks"]["condition-5"]
    assert "decide-Output'] == true" in met["triggerPolicy"]["condition"]
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy_chosen"]["defaultValue"] is True
    deploy = spec["components"]["comp-condition-5"]["dag"]["tasks"]["deploy"]
    assert deploy["inputs"]["parameters"]["name"] == {
        "componentInputParameter": "pipelinechannel--place-target-service_name"
    }


def test_candidates_cross_into_the_target_loops_as_one_bundle() -> None:
    """A collected list entering a DAG reaches it as one artifact on a KFP backend; the
    checker refuses a pipeline that does it."""
    from kfedge.support import COLLECTED_INTO_DAG, pipeline_problems

    spec, platform = _fleet_yaml()
    root = spec["root"]["dag"]["tasks"]
    assert root["bundle"]["inputs"]["artifacts"]["items"]["taskOutputArtifact"]["producerTask"] == (
        "for-loop-1"
    )
    assert pipeline_problems([spec, platform]) == []
    broken = json.loads(json.dumps(spec))
    loop = broken["root"]["dag"]["tasks"]["for-loop-2"]
    loop["inputs"]["artifacts"]["pipelinechannel--bundle-bundle"] = {
        "taskOutputArtifact": {
            "outputArtifactKey": "pipelinechannel--optimize-candidate",
            "producerTask": "for-loop-1",
        }
    }
    problems = pipeline_problems([broken, platform])
    assert any(COLLECTED_INTO_DAG in p and "for-loop-2" in p for p in problems), problems


def test_fleet_pipeline_loads_back_and_nests(tmp_path: Path) -> None:
    from kfp import compiler, dsl
    from kfp import components as kfp_components

    loaded = kfp_components.load_component_from_file(str(ROOT / "pipelines" / "edge-fleet.yaml"))
    assert loaded.component_spec.inputs["targets"].default == ["cpu-arm64", "intel-cpu-openvino"]

    @dsl.pipeline(name="outer")
    def outer():
        loaded(targets=["cpu-arm64", "nvidia-jetson"])

    compiler.Compiler().compile(outer, str(tmp_path / "outer.yaml"))


# ------------------------------------------------------------------- kfp.local, two targets
@pytest.mark.e2e
@pytest.mark.slow
def test_two_targets_one_report_two_endpoints(tmp_path: Path) -> None:
    """`kfedge run --target cpu-arm64,intel-cpu-openvino`: each technique once, every target
    measured (here, marked so), one report, one local endpoint per target."""
    from kfedge.local_run import run_fleet_local

    res = run_fleet_local(
        "cpu-arm64,intel-cpu-openvino",
        techniques="ptq-int8,ptq-fp16",
        goals={"max_accuracy_drop": 0.02, "targets": {"cpu-arm64": {"max_latency_ms": 1e6}}},
        latency_runs=30,
        output_dir=tmp_path,
        quiet=True,
    )
    assert res["ok"]
    rep = json.loads(Path(res["report"]).read_text())
    assert list(rep["targets"]) == ["cpu-arm64", "intel-cpu-openvino"]
    for name, t in rep["targets"].items():
        assert t["on_target"] is False and "kfp.local ran every target" in t["note"]
        assert {"ptq-int8", "ptq-fp16"} <= set(t["rows"]), name
        ep = res["targets"][name]["deploy"]
        assert ep["passed"] and ep["model_name"] == f"kfedge-{name}" and ep["target"] == name
        assert (tmp_path / "latest" / name / "report.md").is_file()
    assert rep["targets"]["cpu-arm64"]["goals"]["max_latency_ms"] == 1e6
    assert rep["targets"]["intel-cpu-openvino"]["goals"].get("max_latency_ms") is None
    optimized = list(Path(res["run_dir"]).glob("**/optimize/candidate/candidate.json"))
    assert len(optimized) == 2  # each technique once, shared by both targets
    md = (tmp_path / "latest" / "report.md").read_text()
    assert md.count(MARK) >= 2 * 4 * 3  # every figure of both targets (3 rows each)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_fleet_run_without_deploying_stops_after_the_reports(tmp_path: Path) -> None:
    """`kfedge run --target a,b --no-deploy`: every target's report, no endpoint."""
    from kfedge.local_run import run_local

    res = run_local(
        target="cpu-arm64,intel-cpu-openvino",
        techniques="ptq-fp16",
        latency_runs=10,
        output_dir=tmp_path,
        quiet=True,
        deploy=False,
    )
    assert res["ok"] and set(res["targets"]) == {"cpu-arm64", "intel-cpu-openvino"}
    for name, t in res["targets"].items():
        assert t["deploy"] is None and t["selected"], name
        assert (tmp_path / "latest" / name / "report.md").is_file()
        assert not (tmp_path / "latest" / name / "endpoint.json").exists()
    assert not list(Path(res["run_dir"]).glob("**/deploy/endpoint/endpoint.json"))


def test_the_backend_rules_the_fleet_relies_on_are_detected_where_it_uses_them() -> None:
    """Nested fan-in (2.14) and loop parallelism (2.4) are found in edge-fleet, within the
    supported floor, and not in edge-optimize (which has neither)."""
    from kfedge.support import KFP_MIN, backend_features, required_kfp

    spec, platform = _fleet_yaml()
    used = backend_features([spec, platform])
    assert used["nested-collected"] == ["comp-for-loop-2/bundle-2.items <- for-loop-3"]
    assert used["loop-parallelism"] == ["comp-for-loop-2/for-loop-3: parallelism 1"]
    assert required_kfp([spec, platform])[0] == KFP_MIN
    single = [
        d for d in yaml.safe_load_all((ROOT / "pipelines" / "edge-optimize.yaml").read_text())
    ]
    assert not {"nested-collected", "loop-parallelism"} & set(backend_features(single))
