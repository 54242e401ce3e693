"""Golden tests of the compiled YAML, and what the compiled pipelines carry to the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kfedge.pipelines.compile import REGENERATE, compile_all, components, pipelines

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ["edge-optimize-deploy", "edge-optimize", "edge-evaluate"]


def _docs(name: str) -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all((ROOT / "pipelines" / f"{name}.yaml").read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def test_checked_in_yaml_is_current():
    stale = compile_all(check=True)
    assert not stale, f"stale compiled YAML: {stale}\nregenerate with: {REGENERATE}"


def test_every_component_and_pipeline_is_compiled():
    names = {p.name for p in components()} | {p.name for p in pipelines()}
    for pipeline in PIPELINES:
        assert f"{pipeline}.yaml" in names
    for comp in (
        "provision",
        "optimize",
        "export_fp32",
        "evaluate",
        "select",
        "report",
        "deploy",
        "quantize",
        "prune",
        "cluster",
        "import_model",
    ):
        assert f"{comp}.yaml" in names, comp


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_yaml_loads_back_and_nests_in_another_pipeline(name: str, tmp_path: Path):
    from kfp import compiler, dsl
    from kfp import components as kfp_components

    loaded = kfp_components.load_component_from_file(str(ROOT / "pipelines" / f"{name}.yaml"))
    required = {
        k: (["s3://models/a.tflite"] if k.endswith("uris") else "s3://models/m.keras")
        for k, v in loaded.component_spec.inputs.items()
        if v.default is None and not v.optional
    }

    @dsl.pipeline(name="outer")
    def outer():
        loaded(**required)

    out = tmp_path / "outer.yaml"
    compiler.Compiler().compile(outer, str(out))
    spec = next(yaml.safe_load_all(out.read_text()))
    assert any(k.startswith("comp-edge") for k in spec["components"])


def _executor_for(spec: dict, task_prefix: str) -> list[str]:
    """Executor labels of every task (at any depth) whose name starts with task_prefix."""
    found = []
    for comp in spec["components"].values():
        for tname, task in comp.get("dag", {}).get("tasks", {}).items():
            if tname.startswith(task_prefix):
                ref = task["componentRef"]["name"]
                found.append(spec["components"][ref]["executorLabel"])
    for tname, task in spec["root"]["dag"]["tasks"].items():
        if tname.startswith(task_prefix):
            found.append(spec["components"][task["componentRef"]["name"]]["executorLabel"])
    return sorted(set(found))


def _from_provision(ref: dict, key: str) -> bool:
    """A reference to provision's output ``key``, directly or through a sub-DAG input."""
    return (
        ref.get("taskOutputParameter")
        == {
            "outputParameterKey": key,
            "producerTask": "provision",
        }
        or ref.get("componentInputParameter") == f"pipelinechannel--provision-{key}"
    )


def test_placement_reaches_evaluate_and_deploy():
    spec, platform = _docs("edge-optimize-deploy")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    evaluates = _executor_for(spec, "evaluate")
    assert len(evaluates) == 2  # the FP32 reference and the candidates in the loop
    for ex in [*evaluates, *_executor_for(spec, "deploy")]:
        cfg = executors[ex]
        assert _from_provision(cfg["nodeSelector"]["nodeSelectorJson"], "node_selector")
        (tol,) = cfg["tolerations"]
        assert _from_provision(tol["tolerationJson"], "tolerations")
    for ex in evaluates:
        acc = spec["deploymentSpec"]["executors"][ex]["container"]["resources"]["accelerator"]
        assert "provision-accelerator_type" in acc["resourceType"]
        assert "provision-accelerator_count" in acc["resourceCount"]
    (dep,) = _executor_for(spec, "deploy")
    assert "accelerator" not in spec["deploymentSpec"]["executors"][dep]["container"].get(
        "resources", {}
    )  # the deploy pod must not hold the edge node's accelerator


def test_s3_secret_reaches_the_steps_that_touch_s3():
    spec, platform = _docs("edge-optimize-deploy")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for task in ("provision", "deploy"):
        (ex,) = _executor_for(spec, task)
        (sec,) = executors[ex]["secretAsEnv"]
        envs = {m["secretKey"]: m["envVar"] for m in sec["keyToEnv"]}
        assert envs == {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
        assert "s3_secret" in str(sec["secretNameParameter"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["s3_secret"]["defaultValue"] == "mlpipeline-minio-artifact"
    for ex in spec["deploymentSpec"]["executors"].values():
        for env in ex["container"].get("env", []):
            assert not env["name"].startswith("AWS_"), "credentials must come from the Secret"


@pytest.mark.parametrize(
    ("target", "label", "accelerator"),
    [
        ("nvidia-jetson", "nvidia.com/gpu.family", "nvidia.com/gpu"),
        ("coral-edgetpu", "feature.node.kubernetes.io/usb-fe_1a6e_089a.present", ""),
        ("cpu-arm64", "kubernetes.io/arch", ""),
    ],
)
def test_provision_outputs_carry_the_target_profile(target: str, label: str, accelerator: str):
    """The values the compiled placement reads at run time come from the target profile."""
    from kfedge.provision import plan_techniques
    from kfedge.targets import load_target

    tgt = load_target(target)
    assert label in tgt.k8s_node_selector()
    acc = tgt.accelerator.accelerator_type if tgt.accelerator else ""
    assert acc == accelerator
    if target == "nvidia-jetson":
        assert any(t["key"] == "nvidia.com/gpu" for t in tgt.k8s_tolerations())
    assert plan_techniques("auto", tgt)


def test_pipeline_parameters_have_defaults_and_descriptions():
    spec, _ = _docs("edge-optimize-deploy")
    params = spec["root"]["inputDefinitions"]["parameters"]
    for name in (
        "model_uri",
        "data_uri",
        "target",
        "techniques",
        "goals_json",
        "epochs",
        "serving_namespace",
    ):
        assert "defaultValue" in params[name], name
        assert params[name].get("description"), name
    assert params["target"]["defaultValue"] == "cpu-amd64"
