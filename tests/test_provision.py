from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from kfedge.candidate import load_candidate, model_path
from kfedge.data import read_info, save_npz
from kfedge.errors import ConfigError, DataError, ModelFormatError, NotFoundError
from kfedge.provision import plan_techniques, provision
from kfedge.targets import FORMATS, QUANTIZATION_MODES, load_target
from kfedge.techniques import TECHNIQUES, get_technique


def test_plan_for_cpu_starts_with_the_fp32_baseline():
    plan = plan_techniques("auto", load_target("cpu-amd64"))
    assert plan[0] == "fp32-tflite"
    assert {"ptq-int8", "qat-int8", "prune", "cluster"} <= set(plan)


def test_plan_for_coral_keeps_int8_tflite_only_plus_the_baseline():
    coral = load_target("coral-edgetpu")
    plan = plan_techniques("auto", coral)
    assert plan[0] == "fp32-tflite"
    assert all(get_technique(t).output == ("tflite", "int8") for t in plan[1:])
    with pytest.raises(ConfigError, match="onnx-int8-static writes onnx, the target runs"):
        plan_techniques("ptq-int8,onnx-int8-static", coral)


def test_bf16_compute_is_planned_only_where_the_profile_states_bf16():
    from kfedge.targets import Target

    plain = load_target("intel-cpu-openvino")
    from kfedge.provision import deployable

    assert not deployable("openvino-bf16", plain) and deployable("openvino-fp16", plain)
    with pytest.raises(ConfigError, match="openvino-bf16 needs nodes with x86-64-bf16"):
        plan_techniques("openvino-bf16", plain)
    bf16 = Target(**{**plain.model_dump(), "isa": "x86-64-avx512-vnni-bf16"})
    assert plan_techniques("openvino-bf16", bf16)[1:] == ["openvino-bf16"]


def test_a_runtime_the_profile_says_cannot_run_is_refused_with_its_reason():
    jetson = load_target("nvidia-jetson")
    with pytest.raises(ConfigError, match="openvino-int8 writes openvino.*glibc >= 2.35"):
        plan_techniques("openvino-int8", jetson)


def test_unknown_technique_is_refused():
    with pytest.raises(ConfigError, match="unknown technique\\(s\\) \\['sparsify'\\]"):
        plan_techniques(["sparsify"], load_target("cpu-amd64"))


def test_every_technique_declares_an_output_a_target_can_list():
    for name, decl in TECHNIQUES.items():
        assert decl.output_format in FORMATS and decl.quant_mode in QUANTIZATION_MODES, name


def test_technique_params_come_from_the_declarations():
    from kfedge.provision import technique_params

    coral = load_target("coral-edgetpu")
    for name, decl in TECHNIQUES.items():
        params = technique_params(name, coral, epochs=2, calibration_samples=64)
        assert ("epochs" in params) == decl.fine_tunes, name
        int8_tflite = decl.output == ("tflite", "int8")
        assert params.get("io_dtype") == ("uint8" if int8_tflite else None), name
    calibrated = {
        n for n in TECHNIQUES if "calibration_samples" in technique_params(n, coral, None, 64)
    }
    assert calibrated == {
        "ptq-int8",
        "onnx-int8-static",
        "openvino-int8",
        "tune-onnx-int8",
        "tune-openvino-int8",
        "prune-cluster-int8",
    }


def test_provision_existing_model_and_npz(
    baseline_model: Path, fp32_onnx: Path, sample_dataset: Path, tmp_path: Path
):
    x, y = np.load(sample_dataset / "eval.npz")["x"], np.load(sample_dataset / "eval.npz")["y"]
    npz = save_npz(tmp_path / "mine.npz", x, y)
    # an ONNX model cannot become the TFLite the Edge TPU runs: refused up front
    with pytest.raises(ModelFormatError, match="fp32-tflite needs a Keras model"):
        provision(str(fp32_onnx), str(npz), "coral-edgetpu", tmp_path / "m", tmp_path / "d")
    spec = provision(
        str(baseline_model),
        str(npz),
        "coral-edgetpu",
        tmp_path / "m",
        tmp_path / "d",
        techniques="ptq-int8",
        epochs=2,
    )
    assert spec["input_shape"] == [32, 32, 1] and spec["num_classes"] == 10
    assert spec["node_selector"]["kubernetes.io/arch"] == "arm64"
    assert spec["params"]["ptq-int8"]["io_dtype"] == "uint8"  # Edge TPU wants integer IO
    assert spec["deployable"] == ["ptq-int8"]
    assert load_candidate(tmp_path / "m").name == "baseline"
    assert model_path(tmp_path / "m").read_bytes() == baseline_model.read_bytes()
    assert sum(read_info(tmp_path / "d").counts.values()) == len(y)
    json.dumps(spec)


def test_provision_refuses_mismatched_data_before_training(baseline_model: Path, tmp_path: Path):
    bad = save_npz(tmp_path / "bad.npz", np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 10)
    t0 = time.monotonic()
    with pytest.raises(DataError, match="the model expects \\[32, 32, 1\\]"):
        provision(str(baseline_model), str(bad), "cpu-amd64", tmp_path / "m", tmp_path / "d")
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()


def test_provision_bad_inputs(tmp_path: Path, fp32_tflite: Path):
    with pytest.raises(NotFoundError, match="available: coral-edgetpu"):
        provision(
            str(fp32_tflite), "sample://digits", "no-such-target", tmp_path / "m", tmp_path / "d"
        )
    with pytest.raises(NotFoundError):
        provision(
            str(tmp_path / "missing.keras"),
            "sample://digits",
            "cpu-amd64",
            tmp_path / "m",
            tmp_path / "d",
        )
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(ModelFormatError, match="junk.onnx"):
        provision(str(junk), "sample://digits", "cpu-amd64", tmp_path / "m", tmp_path / "d")


def test_plan_the_model_cannot_take_is_refused_in_provision(fp32_tflite: Path, tmp_path: Path):
    """Pruning needs a Keras model: a .tflite baseline is refused before anything is written."""
    args = (str(fp32_tflite), "sample://digits", "cpu-amd64", tmp_path / "m", tmp_path / "d")
    with pytest.raises(ModelFormatError, match="pruning needs a tf_keras model"):
        provision(*args, techniques=["prune"])
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()
    # evaluation only: no technique plan to hold the .tflite to
    spec = provision(*args, techniques=["prune"], optimize=False)
    assert spec["techniques"] == [] and spec["model_format"] == "tflite"


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("s3://models/v2/model.onnx", "v2-model.onnx"),
        ("/data/mobilenet_int8.tflite", "mobilenet_int8.tflite"),
        ("s3://models/exp7/saved_model/", "exp7-saved_model"),
        ("file:///tmp/baseline.keras", "baseline.keras"),
    ],
)
def test_imported_models_get_readable_names_apart_from_the_baseline(uri: str, name: str):
    from kfedge.provision import imported_name

    assert imported_name(uri) == name != "baseline"


def test_provision_from_files_writes_the_runtime_spec_and_metadata(
    baseline_model: Path, tmp_path: Path
):
    """The provision component's body, run on plain paths and on artifact-like objects."""
    from types import SimpleNamespace

    from kfedge.provision import import_model_to, provision_from_files, technique_params_from_file

    out = provision_from_files(
        str(baseline_model),
        "sample://digits",
        "cpu-amd64",
        tmp_path / "m",
        tmp_path / "d",
        tmp_path / "rt" / "runtime.json",
        techniques=["ptq-int8", "onnx-int8-static"],
        calibration_samples=64,
    )
    spec = json.loads((tmp_path / "rt" / "runtime.json").read_text())
    assert spec["techniques"] == ["fp32-tflite", "ptq-int8", "onnx-int8-static"]
    assert json.loads(out.plan) == spec["params"]
    assert spec["params"]["onnx-int8-static"] == {"calibration_samples": 64, "isa": "x86-64"}
    assert out.node_selector == {"kubernetes.io/arch": "amd64"}
    assert (out.accelerator_type, out.accelerator_count, out.baseline_format) == ("", "0", "tflite")
    assert json.loads(out.goals)["formats"] == load_target("cpu-amd64").formats
    assert load_candidate(tmp_path / "m").name == "baseline"
    params = technique_params_from_file(tmp_path / "rt" / "runtime.json", "onnx-int8-static")
    assert json.loads(params) == {"calibration_samples": 64, "isa": "x86-64"}
    assert technique_params_from_file(tmp_path / "rt" / "runtime.json", "prune") == "{}"
    with pytest.raises(ConfigError, match="fp32-tflite is the FP32 reference"):
        provision_from_files(
            str(baseline_model), "sample://digits", "cpu-amd64", tmp_path / "m2",
            tmp_path / "d2", tmp_path / "rt2.json", techniques=["fp32-tflite", "ptq-int8"],
        )  # fmt: skip

    arts = {k: SimpleNamespace(path=str(tmp_path / "b" / k), metadata={}) for k in "mdr"}
    provision_from_files(
        str(baseline_model), "sample://digits", "cpu-arm64", arts["m"], arts["d"], arts["r"]
    )
    assert arts["m"].metadata == {
        "name": "baseline",
        "format": "keras",
        "source": str(baseline_model),
    }
    assert arts["d"].metadata["source"] == "sample://digits" and arts["d"].metadata["n_eval"] > 0
    assert arts["r"].metadata["target"] == "cpu-arm64"
    imported = SimpleNamespace(path=str(tmp_path / "imp"), metadata={})
    name = import_model_to(str(baseline_model), imported)
    assert name == imported.metadata["name"] == "baseline.keras"


def test_keras3_model_the_bridge_cannot_rebuild_is_refused_only_for_fine_tuning(tmp_path: Path):
    """Provision reads a Keras 3 model's config (no TensorFlow) when the plan fine-tunes and
    refuses, in one line, the layers the tf_keras rebuild cannot map, naming the techniques."""
    import zipfile

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "k3",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 1]}},
                {
                    "module": "keras.layers",
                    "class_name": "GroupNormalization",
                    "config": {"name": "gnorm", "groups": 2},
                },
            ],
        },
    }
    model = tmp_path / "k3model.keras"
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    with pytest.raises(ModelFormatError) as exc:
        provision(
            str(model),
            "sample://digits",
            "cpu-amd64",
            tmp_path / "m",
            tmp_path / "d",
            techniques="ptq-int8,qat-int8,prune",
        )
    assert str(exc.value) == (
        "k3model.keras: layers Keras 3 -> tf_keras cannot rebuild: GroupNormalization (layer "
        "'gnorm'), so qat-int8, prune cannot fine-tune it; techniques that do not fine-tune "
        "(ptq-*, onnx-*, fp32-*) accept it as is"
    )
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()
    exported = tmp_path / "exported"  # what Keras 3 model.export() writes: no Keras metadata
    exported.mkdir()
    (exported / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ModelFormatError, match=r"traced functions, not layers.* for cluster;"):
        provision(
            str(exported),
            "sample://digits",
            "cpu-amd64",
            tmp_path / "m",
            tmp_path / "d",
            techniques=["cluster"],
        )
