"""The optimize components run under kfp.local (SubprocessRunner, no venv) in one small pipeline
that chains them through Model artifacts; a bad parameter fails its task with the reason."""

import json
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Model, Output

from kfedge.candidate import load_candidate
from kfedge.components.cluster import cluster
from kfedge.components.export_fp32 import export_fp32
from kfedge.components.optimize import optimize
from kfedge.components.prune import prune
from kfedge.components.quantize import quantize
from kfedge.components.quantize_onnx import quantize_onnx

COMPONENTS = [optimize, export_fp32, quantize, quantize_onnx, prune, cluster]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _import_model(path: str, model: Output[Model]):
    import os
    import shutil

    os.makedirs(model.path, exist_ok=True)
    shutil.copy(path, os.path.join(model.path, "model.keras"))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _import_dataset(path: str, dataset: Output[Dataset]):
    import shutil

    shutil.copytree(path, dataset.path)


@dsl.pipeline(name="optimize-chain")
def _chain_pipeline(model_file: str, data_dir: str) -> Model:
    m = _import_model(path=model_file)
    d = _import_dataset(path=data_dir)
    base, data = m.outputs["model"], d.outputs["dataset"]
    p = optimize(
        technique="prune", model=base, dataset=data, params_json='{"epochs": 2, "frequency": 5}'
    )
    c = cluster(
        model=p.outputs["candidate"],
        dataset=data,
        number_of_clusters=8,
        params_json='{"epochs": 1}',
    )
    quantize(model=c.outputs["candidate"], dataset=data, mode="ptq-int8")
    e = export_fp32(model=base, model_format="onnx")
    quantize_onnx(model=e.outputs["candidate"], dataset=data, mode="onnx-int8-dynamic")
    f = prune(model=base, dataset=data, target_sparsity=0.6, params_json='{"epochs": 1}')
    return f.outputs["candidate"]


@dsl.pipeline(name="optimize-bad")
def _bad_pipeline(model_file: str, data_dir: str):
    m = _import_model(path=model_file)
    d = _import_dataset(path=data_dir)
    optimize(
        technique="prune",
        model=m.outputs["model"],
        dataset=d.outputs["dataset"],
        params_json='{"target_sparsity": 1.2}',
    )


def _candidates(root: Path) -> dict[str, tuple[Path, object]]:
    out = {}
    for meta in root.rglob("candidate.json"):
        cand = load_candidate(meta.parent)
        out[cand.name] = (meta.parent, cand)
    return out


def test_components_compiled_yaml_matches_names():
    here = Path(__file__).resolve().parents[1] / "components"
    for comp in COMPONENTS:
        name = comp.python_func.__name__
        text = (here / f"{name}.yaml").read_text()
        assert f"# Name: {comp.component_spec.name}" in text
        assert f"- {name}\n" in text  # --function_to_execute


def test_components_chain_under_kfp_local(baseline_model, sample_dataset, tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    run = _chain_pipeline(model_file=str(baseline_model), data_dir=str(sample_dataset))
    cands = _candidates(tmp_path)
    assert {
        "prune-50",
        "prune-50-cluster-8",
        "prune-50-cluster-8-ptq-int8",
        "fp32-onnx",
        "fp32-onnx-onnx-int8-dynamic",
        "prune-60",
    } <= set(cands), sorted(cands)
    _, q = cands["prune-50-cluster-8-ptq-int8"]
    assert q.technique == "prune>cluster>ptq-int8" and q.parent == "prune-50-cluster-8"
    _, c = cands["prune-50-cluster-8"]
    assert c.stats["preserve_sparsity"] is True and c.params["number_of_clusters"] == 8
    _, o = cands["fp32-onnx-onnx-int8-dynamic"]
    assert o.format == "onnx" and o.technique == "fp32-onnx>onnx-int8-dynamic"
    # the pipeline output carries the candidate metadata set by the component
    out = run.output
    assert out.metadata["technique"] == "prune"
    assert json.loads(out.metadata["params"])["target_sparsity"] == 0.6
    assert out.metadata["sparsity"] >= 0.59
    assert load_candidate(out.path).name == "prune-60"


def test_bad_params_fail_the_task_with_the_reason(baseline_model, sample_dataset, tmp_path, capfd):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    with pytest.raises(RuntimeError):
        _bad_pipeline(model_file=str(baseline_model), data_dir=str(sample_dataset))
    out = capfd.readouterr()
    text = out.out + out.err
    # the task's own error, not the echoed inputs
    assert "ConfigError: invalid parameters for technique 'prune'" in text
    assert "target_sparsity: Input should be less than 1" in text
    assert not list(tmp_path.rglob("candidate.json"))


class _Artifact:
    """What a KFP output artifact gives a library entry: a path and a metadata dict."""

    def __init__(self, path: Path) -> None:
        self.path, self.metadata = str(path), {}


def test_export_fp32_keeps_what_the_edge_runs_and_exports_keras(
    baseline_model, fp32_tflite, fp32_onnx, tmp_path
):
    """edge-evaluate's step before the TF-free edge node: .tflite / .onnx kept as they are,
    Keras exported to the target's FP32 format; both keep their own name."""
    import shutil

    from kfedge.candidate import Candidate, save_candidate
    from kfedge.formats import detect_format
    from kfedge.reference import export_fp32_into

    def imported(dirname: str, src: Path, name: str, fmt: str) -> Path:
        where = tmp_path / dirname
        where.mkdir()
        shutil.copy(src, where / f"model.{fmt}")
        save_candidate(Candidate(name, "imported", fmt, f"model.{fmt}"), where)
        return where

    keras_cand = imported("keras-in", baseline_model, "my-model.keras", "keras")
    out = _Artifact(tmp_path / "keras-out")
    assert export_fp32_into(out, keras_cand, keep_deployable=True, target="cpu-amd64") == (
        "my-model.keras"
    )
    cand = load_candidate(out.path)
    assert cand.name == "my-model.keras" and cand.format == "tflite"
    assert out.metadata["name"] == "my-model.keras"
    # an ONNX-first target: the export follows the target, not model_format
    assert _prefers_onnx("nvidia-gpu")
    out = _Artifact(tmp_path / "keras-onnx")
    export_fp32_into(out, keras_cand, "tflite", keep_deployable=True, target="nvidia-gpu")
    assert load_candidate(out.path).format == "onnx"

    onnx_cand = imported("onnx-in", fp32_onnx, "theirs.onnx", "onnx")
    out = _Artifact(tmp_path / "onnx-out")
    # an ONNX model on a TFLite-first target is measured as it is, not converted
    assert export_fp32_into(out, onnx_cand, keep_deployable=True, target="cpu-amd64") == (
        "theirs.onnx"
    )
    assert (Path(out.path) / "model.onnx").read_bytes() == fp32_onnx.read_bytes()
    assert out.metadata["format"] == "onnx"

    out = _Artifact(tmp_path / "plain")  # without keep_deployable: named after the export
    assert export_fp32_into(out, keras_cand, "tflite") == "my-model.keras-fp32-tflite"
    assert detect_format(Path(out.path) / "model.tflite") == "tflite"


def _prefers_onnx(target: str) -> bool:
    from kfedge.targets import load_target

    return list(load_target(target).formats)[:1] == ["onnx"]
