"""Keras 3 models through kfedge: every technique, the tf_keras rebuild recorded, refusals early.

The Keras 3 models are built here, once per module, on the 8x8 digits of ``sample://digits``
(the data is fitted to the model's 8x8x1 input), small enough to fine-tune in seconds.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from kfedge.errors import KfedgeError, ModelFormatError
from kfedge.keras3_config import NO_FINE_TUNE

#: Keras 3 layers the tf_keras rebuild maps (Rescaling is also one tfmot's QAT does not list).
MAPPED = ("Rescaling", "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Dense")


@pytest.fixture(scope="module")
def digits8() -> tuple[np.ndarray, np.ndarray]:
    from kfedge.data import sample_digits

    x, y, _ = sample_digits((8, 8), 1)
    return x, y


def _train_and_save(keras3, model, digits8, path: Path, epochs: int) -> Path:
    x, y = digits8
    model.compile(
        optimizer=keras3.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def k3_cnn(keras3, digits8, tmp_path_factory) -> Path:
    """A small Keras 3 CNN (Rescaling, Conv + BN + ReLU, pooling, Dense), trained, as .keras."""
    L = keras3.layers
    model = keras3.Sequential(
        [
            keras3.Input((8, 8, 1), name="image"),
            L.Rescaling(2.0, offset=-1.0, name="scale"),
            L.Conv2D(8, 3, padding="same", use_bias=False, name="conv1"),
            L.BatchNormalization(name="bn1"),
            L.ReLU(name="relu1"),
            L.MaxPooling2D(2, name="pool1"),
            L.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(10, activation="softmax", name="probs"),
        ],
        name="k3cnn",
    )
    path = tmp_path_factory.mktemp("k3cnn") / "k3cnn.keras"
    return _train_and_save(keras3, model, digits8, path, epochs=12)


@pytest.fixture(scope="module")
def k3_groupnorm(keras3, digits8, tmp_path_factory) -> Path:
    """A Keras 3 CNN with GroupNormalization, a layer the tf_keras rebuild does not map."""
    L = keras3.layers
    model = keras3.Sequential(
        [
            keras3.Input((8, 8, 1), name="image"),
            L.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            L.GroupNormalization(groups=2, name="gnorm"),
            L.Flatten(name="flat"),
            L.Dense(10, activation="softmax", name="probs"),
        ],
        name="k3group",
    )
    path = tmp_path_factory.mktemp("k3group") / "k3group.keras"
    return _train_and_save(keras3, model, digits8, path, epochs=4)


REFUSAL = (
    "k3group.keras: layers Keras 3 -> tf_keras cannot rebuild: GroupNormalization (layer "
    f"'gnorm'), so prune cannot fine-tune it; {NO_FINE_TUNE}"
)


def test_provision_refuses_an_unmappable_keras3_model_only_for_fine_tuning(
    k3_groupnorm: Path, tmp_path: Path
):
    from kfedge.provision import provision

    with pytest.raises(ModelFormatError) as exc:
        provision(
            str(k3_groupnorm),
            "sample://digits",
            "cpu-amd64",
            tmp_path / "m",
            tmp_path / "d",
            techniques="ptq-int8,prune",
        )
    assert str(exc.value) == REFUSAL
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()
    spec = provision(
        str(k3_groupnorm),
        "sample://digits",
        "cpu-amd64",
        tmp_path / "m",
        tmp_path / "d",
        techniques="ptq-int8,onnx-int8-static",
    )
    assert spec["techniques"] == ["fp32-tflite", "ptq-int8", "onnx-int8-static"]
    assert spec["model_format"] == "keras"
    assert spec["input_shape"] == [8, 8, 1] and spec["num_classes"] == 10
    assert (tmp_path / "m" / "model.keras").read_bytes() == k3_groupnorm.read_bytes()


def test_keras3_h5_and_export_are_accepted_as_they_are_for_ptq(
    keras3, k3_cnn: Path, tmp_path: Path
):
    """A Keras 3 .h5 is planned with fine-tuning (the bridge reads it); a SavedModel from
    model.export() is read for PTQ, and refused for fine-tuning in its own line."""
    from kfedge.provision import provision

    model = keras3.saving.load_model(k3_cnn, compile=False)
    h5 = tmp_path / "k3cnn.h5"
    model.save(h5)
    spec = provision(
        str(h5), "sample://digits", "cpu-amd64", tmp_path / "m1", tmp_path / "d1", "ptq-int8,prune"
    )
    assert spec["techniques"] == ["fp32-tflite", "ptq-int8", "prune"]
    exported = tmp_path / "exported"
    model.export(str(exported), verbose=False)
    spec = provision(
        str(exported), "sample://digits", "cpu-amd64", tmp_path / "m2", tmp_path / "d2", "ptq-int8"
    )
    assert spec["model_format"] == "savedmodel" and spec["input_shape"] == [8, 8, 1]
    with pytest.raises(ModelFormatError, match=r"model\.export\(\) writes\) holds traced") as exc:
        provision(
            str(exported), "sample://digits", "cpu-amd64", tmp_path / "m", tmp_path / "d", "cluster"
        )
    assert "\n" not in str(exc.value)


def test_every_fine_tuning_technique_rebuilds_a_keras3_model_and_records_it(
    keras3, k3_cnn: Path, tmp_path: Path
):
    """apply() on the Keras 3 file itself: the rebuild is checked against the Keras 3 outputs and
    recorded; QAT quantizes Rescaling at its output instead of refusing the model."""
    from kfedge.data import prepare_dataset
    from kfedge.techniques import apply

    data = tmp_path / "data"
    prepare_dataset("sample://digits", data, [8, 8, 1], 10)
    cand = apply("qat-int8", k3_cnn, data, {"epochs": 1}, tmp_path / "qat")
    bridge = cand.stats["keras_bridge"]
    assert bridge["source"] == str(k3_cnn) and bridge["source_keras_version"].startswith("3")
    assert bridge["samples"] == 64 and bridge["max_abs_diff"] <= bridge["tolerance"]
    assert set(bridge["layer_classes"]) == {*MAPPED, "GlobalAveragePooling2D"}
    assert cand.stats["output_only_layers"] == ["scale"]
    assert cand.stats["weight_dtype_counts"] == {"int8": 3}
    saved = json.loads((tmp_path / "qat" / "candidate.json").read_text())
    assert saved["stats"]["keras_bridge"] == bridge
    assert not list(tmp_path.glob("qat/*bridged*"))  # the rebuild is not kept in the candidate


@pytest.mark.slow
@pytest.mark.e2e
def test_unmappable_keras3_model_fails_in_provision_and_runs_a_plan_without_fine_tuning(
    k3_groupnorm: Path, tmp_path: Path
):
    from kfedge.local_run import run_local

    with pytest.raises(KfedgeError) as exc:
        run_local(
            model=str(k3_groupnorm),
            techniques="ptq-int8,prune",
            deploy=False,
            output_dir=tmp_path / "refused",
            quiet=True,
        )
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"provision failed: ModelFormatError: {REFUSAL} (log: ")
    (log,) = (tmp_path / "refused").rglob("run.log")
    assert len(re.findall(r"Executing task .{0,12}provision", log.read_text())) == 1  # no retry
    result = run_local(
        model=str(k3_groupnorm),
        techniques="ptq-int8,onnx-int8-static,ptq-fp16",
        deploy=False,
        epochs=1,
        output_dir=tmp_path / "ran",
        quiet=True,
    )
    report = json.loads(Path(result["report"]).read_text())
    names = sorted(c["name"] for c in report["candidates"])
    assert names == ["fp32-tflite", "onnx-int8-static", "ptq-fp16", "ptq-int8"]
    base = next(c for c in report["candidates"] if c["name"] == "fp32-tflite")
    for cand in report["candidates"]:
        assert abs(cand["accuracy"] - base["accuracy"]) <= 0.05, cand["name"]


@pytest.mark.slow
@pytest.mark.e2e
def test_keras3_model_runs_the_default_cpu_plan_like_a_tf_keras_model(k3_cnn: Path, tmp_path: Path):
    """kfedge run on a Keras 3 .keras with the default cpu-amd64 plan: one candidate per planned
    technique, named as for a tf_keras model; each fine-tuned one records the rebuild."""
    from kfedge.local_run import run_local
    from kfedge.provision import plan_techniques, technique_params
    from kfedge.targets import load_target
    from kfedge.techniques import get_technique

    target = load_target("cpu-amd64")
    plan = plan_techniques("auto", target)
    tuned = {t for t in plan if get_technique(t).fine_tunes}
    assert {"qat-int8", "prune", "cluster", "prune-cluster-int8"} <= tuned  # the default plan
    expected = {}
    for t in plan:
        decl = get_technique(t)
        expected[decl.own_name(decl.validate(technique_params(t, target, epochs=1)))] = t
    result = run_local(
        model=str(k3_cnn),
        techniques="auto",
        epochs=1,
        deploy=False,
        output_dir=tmp_path,
        quiet=True,
    )
    report = json.loads(Path(result["report"]).read_text())
    assert report["baseline"] == "fp32-tflite"
    assert sorted(c["name"] for c in report["candidates"]) == sorted(expected)
    for cand in report["candidates"]:
        assert 0.5 <= cand["accuracy"] <= 1.0, cand["name"]
        assert 0 < cand["latency_ms"]["p50"] <= cand["latency_ms"]["p99"], cand["name"]
        assert cand["size_bytes"] > 0, cand["name"]
    stats = {}
    for f in Path(result["run_dir"]).rglob("candidate.json"):
        meta = json.loads(f.read_text())
        stats[meta["name"]] = meta["stats"]
    for name, technique in expected.items():
        if technique in tuned:
            bridge = stats[name]["keras_bridge"]
            assert bridge["source_keras_version"].startswith("3"), name
            assert bridge["max_abs_diff"] <= bridge["tolerance"], name
            assert set(MAPPED) <= set(bridge["layer_classes"]), name
        else:
            assert "keras_bridge" not in stats[name], name
    assert stats["qat-int8"]["output_only_layers"] == ["scale"]


@pytest.fixture(scope="module")
def k3_standalone_bn(keras3, digits8, tmp_path_factory) -> Path:
    """Conv2D(relu) -> BatchNormalization -> DepthwiseConv2D -> Dense: a BN no conv folds."""
    L = keras3.layers
    model = keras3.Sequential(
        [
            keras3.Input((8, 8, 1), name="image"),
            L.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            L.BatchNormalization(name="bn"),
            L.DepthwiseConv2D(3, padding="same", name="dw"),
            L.Flatten(name="flat"),
            L.Dense(10, activation="softmax", name="probs"),
        ],
        name="k3bn",
    )
    path = tmp_path_factory.mktemp("k3bn") / "k3bn.keras"
    return _train_and_save(keras3, model, digits8, path, epochs=8)


def test_qat_keeps_a_standalone_batchnorm_in_float_and_says_so(
    keras3, k3_standalone_bn: Path, tmp_path: Path
):
    """tfmot refuses a BatchNormalization that follows a Conv2D with an activation; QAT
    quantizes its output only (its weights stay float) and names it in candidate.json."""
    from kfedge.data import prepare_dataset
    from kfedge.techniques import apply

    data = tmp_path / "data"
    prepare_dataset("sample://digits", data, [8, 8, 1], 10)
    cand = apply("qat-int8", k3_standalone_bn, data, {"epochs": 1}, tmp_path / "qat")
    assert cand.stats["output_only_layers"] == ["bn"]
    assert cand.stats["float_weight_layers"] == ["bn"]
    assert cand.format == "tflite"


@pytest.mark.slow
@pytest.mark.e2e
def test_a_failing_technique_becomes_a_failed_candidate_and_the_run_reports(
    k3_standalone_bn: Path, tmp_path: Path, monkeypatch
):
    """kfedge run with ptq-int8,prune,qat-int8 on the standalone-BN model: a report with every
    candidate; a technique that raises (here qat-int8, forced) is listed with its reason."""
    from kfedge.local_run import run_local

    def run(techniques: str, out: str) -> tuple[dict, dict]:
        result = run_local(
            model=str(k3_standalone_bn),
            techniques=techniques,
            epochs=1,
            deploy=False,
            output_dir=tmp_path / out,
            quiet=True,
        )
        return result, json.loads(Path(result["report"]).read_text())

    _, report = run("ptq-int8,prune,qat-int8", "ok")
    assert sorted(c["name"] for c in report["candidates"]) == [
        "fp32-tflite", "prune-50", "ptq-int8", "qat-int8",
    ]  # fmt: skip
    assert report["failed"] == []
    # a technique that raises (injected into the steps' processes through sitecustomize): the
    # others are still evaluated, selected and reported
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from kfedge.techniques.qat_int8 import QatInt8\n"
        "def _boom(*a, **k):\n"
        "    raise RuntimeError('forced failure\\nsecond line')\n"
        "QatInt8.transform = _boom\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result, report = run("ptq-int8,qat-int8", "failing")
    assert sorted(c["name"] for c in report["candidates"]) == ["fp32-tflite", "ptq-int8"]
    (failed,) = report["failed"]
    assert failed["name"] == "qat-int8" and "forced failure" in failed["reason"]
    assert "## Failed candidates" in Path(result["report"]).with_suffix(".md").read_text()
