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
        "benchmark",
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


def test_placement_reaches_evaluate_and_benchmark_not_deploy():
    spec, platform = _docs("edge-optimize-deploy")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    evaluates = _executor_for(spec, "evaluate")
    assert len(evaluates) == 2  # the FP32 reference and the candidates in the loop
    on_node = [*evaluates, *_executor_for(spec, "benchmark")]
    assert len(on_node) == 3
    for ex in on_node:
        cfg = executors[ex]
        assert _from_provision(cfg["nodeSelector"]["nodeSelectorJson"], "node_selector")
        (tol,) = cfg["tolerations"]
        assert _from_provision(tol["tolerationJson"], "tolerations")
        acc = spec["deploymentSpec"]["executors"][ex]["container"]["resources"]["accelerator"]
        assert "provision-accelerator_type" in acc["resourceType"]
        assert "provision-accelerator_count" in acc["resourceCount"]
    (dep,) = _executor_for(spec, "deploy")
    # deploy only talks to the API server: an ordinary node, no accelerator, no S3 secret
    # (KServe's storage initializer fetches the model with the storage Secret)
    assert dep not in executors
    assert "accelerator" not in spec["deploymentSpec"]["executors"][dep]["container"].get(
        "resources", {}
    )


@pytest.mark.parametrize("name", PIPELINES)
def test_node_pinned_steps_run_the_tensorflow_free_serving_image(name: str):
    """Evaluate and benchmark run on the edge node in the serving image (multi-arch, no TF);
    every other step in the component image."""
    from kfedge._version import COMPONENT_IMAGE, SERVING_IMAGE

    spec, platform = _docs(name)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    pinned = {ex for ex, cfg in executors.items() if "nodeSelector" in cfg}
    assert pinned == set(_executor_for(spec, "evaluate") + _executor_for(spec, "benchmark"))
    for ex, cfg in spec["deploymentSpec"]["executors"].items():
        want = SERVING_IMAGE if ex in pinned else COMPONENT_IMAGE
        assert cfg["container"]["image"] == want, ex


@pytest.mark.parametrize("name", PIPELINES)
def test_one_benchmark_after_every_evaluation_feeds_select_and_report(name: str):
    """The side-by-side benchmark runs once, after the loop (every evaluate in it) and the
    reference's evaluation, takes every candidate plus the reference, and select and report
    read its timings."""
    spec, _ = _docs(name)
    root = spec["root"]["dag"]["tasks"]
    (bench,) = [k for k in root if k.startswith("benchmark")]
    loops = [k for k, t in root.items() if "parameterIterator" in t]
    assert len(loops) == 1
    loop_tasks = spec["components"][root[loops[0]]["componentRef"]["name"]]["dag"]["tasks"]
    assert any(k.startswith("evaluate") for k in loop_tasks)  # the loop holds evaluations
    assert set(root[bench]["dependentTasks"]) >= {loops[0], "evaluate"}
    arts = root[bench]["inputs"]["artifacts"]
    assert arts["models"]["taskOutputArtifact"]["producerTask"] == loops[0]  # dsl.Collected
    assert "producerTask" in arts["baseline"]["taskOutputArtifact"]
    for consumer in ("select", "report"):
        t = root[consumer]["inputs"]["artifacts"]["timings"]["taskOutputArtifact"]
        assert t == {"outputArtifactKey": "timings", "producerTask": bench}


@pytest.mark.parametrize("name", PIPELINES)
def test_benchmark_pod_asks_for_whole_cpus_with_limits_equal_to_requests(name: str):
    spec, _ = _docs(name)
    res = spec["deploymentSpec"]["executors"]["exec-benchmark"]["container"]["resources"]
    assert res["resourceCpuRequest"] == res["resourceCpuLimit"]
    assert float(res["resourceCpuRequest"]).is_integer() and float(res["resourceCpuLimit"]) >= 1
    assert res["resourceMemoryRequest"] == res["resourceMemoryLimit"]


@pytest.mark.parametrize("name", PIPELINES)
def test_no_pod_level_retries(name: str):
    """KFP retries cannot tell a transient fault from a deterministic one; the library retries
    S3 and Kubernetes API calls itself, so no task retries at the pod level."""
    spec, _ = _docs(name)
    comps = [spec["root"], *spec["components"].values()]
    for comp in comps:
        for key, task in comp.get("dag", {}).get("tasks", {}).items():
            assert "retryPolicy" not in task, key


def test_evaluation_latency_is_a_rough_figure_and_rounds_are_a_parameter():
    spec, _ = _docs("edge-optimize")
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["latency_runs"]["defaultValue"] == 30
    assert params["benchmark_rounds"]["defaultValue"] >= 3


def test_s3_secret_reaches_the_steps_that_touch_s3():
    spec, platform = _docs("edge-optimize-deploy")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (dep,) = _executor_for(spec, "deploy")
    assert dep not in executors, "deploy touches no S3: KServe fetches with the storage Secret"
    for task in ("provision",):
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


def test_compile_with_a_registry_rewrites_every_kfedge_image(tmp_path: Path):
    from kfedge.images import image_ref
    from kfedge.pipelines.compile import with_registry

    before = {p: p.read_text() for p in (ROOT / "pipelines").glob("*.yaml")}
    written = compile_all(output_dir=tmp_path, registry="registry.local:5000/team")
    assert {Path(w).name for w in written} == {p.name for p in [*components(), *pipelines()]}
    images = set()
    for w in written:
        text = Path(w).read_text()
        images |= {ln.split("image:", 1)[1].strip() for ln in text.splitlines() if "image:" in ln}
    assert images == {
        image_ref("component", "registry.local:5000/team"),
        image_ref("serving", "registry.local:5000/team"),
    }
    assert {p: p.read_text() for p in (ROOT / "pipelines").glob("*.yaml")} == before
    # foreign images are left alone; quoted references are rewritten too
    text = "    image: docker.io/library/python:3.11\n  - image: 'ghcr.io/kfedge/kfedge:0.1.0'\n"
    assert with_registry(text, "r.example") == (
        "    image: docker.io/library/python:3.11\n  - image: 'r.example/kfedge:0.1.0'\n"
    )


def test_compile_with_a_registry_never_overwrites_the_checked_in_yaml():
    from kfedge.errors import ConfigError

    with pytest.raises(ConfigError, match="output directory"):
        compile_all(registry="r.example")
    with pytest.raises(ConfigError, match="--check"):
        compile_all(check=True, registry="r.example")


def test_cli_compile_registry_defaults_to_build_yaml(tmp_path: Path, monkeypatch, capsys):
    from kfedge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["compile", "--registry", "r.example/me"]) == 0
    assert "in build/yaml" in capsys.readouterr().out
    text = (tmp_path / "build" / "yaml" / "edge-optimize.yaml").read_text()
    assert "image: r.example/me/kfedge-serving:" in text


def test_compile_fails_on_a_reference_the_backend_cannot_resolve(monkeypatch, tmp_path: Path):
    """The backend rules run at compile time: one line per problem, nothing written."""
    import kfedge.support as support
    from kfedge.errors import ConfigError

    monkeypatch.setattr(support, "pipeline_problems", lambda docs: ["producerTask 'x' unknown"])
    with pytest.raises(ConfigError) as err:
        compile_all(output_dir=tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("the compiled pipelines would fail")
    assert sorted(lines[1:]) == sorted(
        f"{p}.yaml: producerTask 'x' unknown" for p in [*PIPELINES, "edge-fleet"]
    )
    assert not list(tmp_path.iterdir())
