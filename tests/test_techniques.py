"""Optimization techniques: each candidate is built once per module and checked for the property
its technique promises (weight dtypes, sparsity, clusters, graph ops), accuracy versus the FP32
baseline on the sample's eval split, refusals before any heavy work, and metadata round trips."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kfedge import techniques
from kfedge.candidate import load_candidate, model_path
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques import _blocks

# -- helpers ---------------------------------------------------------------------------------


def _accuracy(path: Path, data: Path) -> float:
    from kfedge.data import load_split
    from kfedge.runners import load_runner

    x, y = load_split(data, "eval")
    runner = load_runner(path, threads=2)
    return float(np.mean(np.argmax(runner.predict(x), axis=1) == y))


def _tflite_weight_dtypes(path: Path) -> dict[str, str]:
    """Dtype of the weight input of every conv / dense op, read from get_tensor_details."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    details = {t["index"]: t for t in interp.get_tensor_details()}
    out = {}
    for op in interp._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = details[int(op["inputs"][1])]
            out[f"{op['op_name']}#{op['index']}:{w['name']}"] = np.dtype(w["dtype"]).name
    return out


def _kernels(cand_dir: Path) -> dict[str, np.ndarray]:
    from kfedge.models import load_keras

    cand = load_candidate(cand_dir)
    assert cand.keras_file, "the candidate must keep its stripped Keras model"
    model = load_keras(cand_dir / cand.keras_file)
    out = {}
    for layer in model.layers:
        k = getattr(layer, "depthwise_kernel", None)
        k = getattr(layer, "kernel", None) if k is None else k
        if k is not None:
            out[layer.name] = np.asarray(k.numpy())
    return out


def _onnx_ops(path: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _build(name, model, data, params, out: Path):
    t0 = time.perf_counter()
    cand = techniques.apply(name, model, data, params, out)
    return cand, time.perf_counter() - t0


# -- fixtures: every candidate once ----------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("techniques")


@pytest.fixture(scope="module")
def baseline_acc(baseline_model: Path, sample_dataset: Path) -> float:
    return _accuracy(baseline_model, sample_dataset)


@pytest.fixture(scope="module")
def built(baseline_model: Path, sample_dataset: Path, work: Path):
    """Build candidates lazily, each once per module: built(key) -> (dir, Candidate, seconds)."""
    specs = {
        "ptq-int8": ("ptq-int8", baseline_model, {}),
        "ptq-int8-uint8": ("ptq-int8", baseline_model, {"io_dtype": "uint8"}),
        "ptq-fp16": ("ptq-fp16", baseline_model, {}),
        "ptq-dynamic": ("ptq-dynamic", baseline_model, {}),
        "onnx-static": ("onnx-int8-static", baseline_model, {}),
        "onnx-dynamic": ("onnx-int8-dynamic", baseline_model, {}),
        "onnx-fp16": ("onnx-fp16", baseline_model, {}),
        "qat": ("qat-int8", baseline_model, {}),
        "prune50": ("prune", baseline_model, {"target_sparsity": 0.5}),
        "prune2by4": ("prune", baseline_model, {"sparsity_m_by_n": [2, 4], "epochs": 3}),
        "prune80": ("prune", baseline_model, {"target_sparsity": 0.8}),
        "prune80x4": ("prune", baseline_model, {"target_sparsity": 0.8, "block_size": [1, 4]}),
        "cluster16": ("cluster", baseline_model, {"number_of_clusters": 16}),
        "pcqat": ("pcqat-int8", baseline_model, {"epochs": 2}),
    }
    cache: dict[str, tuple[Path, object, float]] = {}

    def get(key: str):
        if key not in cache:
            if key == "prune50-cluster8":  # chained through the prune candidate directory
                name, model, params = "cluster", get("prune50")[0], {"number_of_clusters": 8}
            else:
                name, model, params = specs[key]
            out = work / key
            cand, secs = _build(name, model, sample_dataset, params, out)
            cache[key] = (out, cand, secs)
        return cache[key]

    return get


# -- registry and contract -------------------------------------------------------------------


def test_registry_names_and_configs():
    names = techniques.list_techniques()
    assert " ".join(names) == (
        "fp32-tflite fp32-onnx fp32-openvino ptq-dynamic ptq-fp16 ptq-int8 onnx-int8-static "
        "onnx-int8-dynamic onnx-fp16 openvino-int8 openvino-fp16 openvino-bf16 tune-onnx-int8 "
        "tune-openvino-int8 qat-int8 prune cluster prune-cluster-int8 pqat-int8 cqat-int8 "
        "pcqat-int8 channel-prune"
    )
    for name in names:
        cfg = techniques.validate_config(name, {})
        assert cfg.model_config.get("extra") == "forbid"
        decl = techniques.get_technique(name)
        assert decl.name == name and decl.description and decl.Config is type(cfg)
        assert decl.output_format in ("tflite", "onnx", "openvino")
        assert decl.model_file == {"openvino": "model.xml"}.get(
            decl.output_format, f"model.{decl.output_format}"
        )
        assert decl.quant_mode in ("fp32", "fp16", "int8", "dynamic")
        # a technique that fine-tunes takes epochs; one that does not, does not
        assert decl.fine_tunes == ("epochs" in decl.Config.model_fields), name
    cfg = techniques.validate_config("prune-cluster-int8", {"epochs": 2})
    assert cfg.prune_config().epochs == 2 and cfg.cluster_config().epochs == 2


def test_declarations_feed_families_and_describe():
    assert techniques.FAMILIES["export_fp32"] == {
        "tflite": "fp32-tflite",
        "onnx": "fp32-onnx",
        "openvino": "fp32-openvino",
    }
    assert list(techniques.FAMILIES["quantize"]) == [
        "ptq-dynamic",
        "ptq-fp16",
        "ptq-int8",
        "qat-int8",
    ]
    assert list(techniques.FAMILIES["quantize_onnx"]) == [
        "onnx-int8-static",
        "onnx-int8-dynamic",
        "onnx-fp16",
    ]
    assert techniques.FAMILIES["prune"] == {"prune": "prune"}
    assert set(techniques.FAMILIES) == {
        "export_fp32",
        "quantize",
        "quantize_onnx",
        "prune",
        "cluster",
    }
    info = {d["name"]: d for d in techniques.describe()}
    assert info["pqat-int8"]["group"] == "QAT" and info["pqat-int8"]["fine_tunes"] is True
    assert (info["onnx-fp16"]["output_format"], info["onnx-fp16"]["quant_mode"]) == ("onnx", "fp16")
    assert "target_sparsity" in info["prune"]["params"]["properties"]


def _legacy_group(technique: str) -> str | None:
    """The report's grouping before declarations: by name fragments."""
    t = technique.lower()
    if "qat" in t:
        return "QAT"
    if any(k in t for k in ("ptq", "int8", "fp16", "float16", "dynamic", "quant")):
        return "PTQ"
    return None


def test_report_group_reads_declarations_with_todays_results():
    chains = [
        "baseline",
        "unknown",
        "imported",
        "",
        "prune>cluster",
        "prune>ptq-int8",
        "prune>cluster>ptq-int8",
        "prune>pqat-int8",
        "cluster>cqat-int8",
        "prune>cluster>pcqat-int8",
        "prune>ptq-dynamic",
        "prune>cluster>onnx-fp16",
        "my-float16-export",
        "Vendor-QUANT",
    ]
    for t in [*techniques.list_techniques(), *chains]:
        assert techniques.report_group(t) == _legacy_group(t), t
    assert techniques.report_group("prune-cluster-int8") == "PTQ"
    assert techniques.report_group("pcqat-int8") == "QAT"


def test_report_group_and_families_follow_a_new_declaration():
    """A declared group wins over the name: ``distill`` says nothing, its declaration does."""
    from kfedge.techniques import Technique

    assert techniques.report_group("prune>distill") is None

    class Distill(Technique):
        """A test declaration (never applied)."""

        name = "distill"
        quant_mode = "int8"
        group = "QAT"
        family = "quantize"

    try:
        assert techniques.report_group("prune>distill") == "QAT"
        assert techniques.FAMILIES["quantize"]["distill"] == "distill"
        assert techniques.list_techniques()[-1] == "distill"
    finally:
        techniques.TECHNIQUES.pop("distill")
    assert "distill" not in techniques.FAMILIES["quantize"]


# -- refusals before any heavy work ----------------------------------------------------------


def _assert_refused(exc_type, match, name, model, data, params, out: Path):
    t0 = time.perf_counter()
    with pytest.raises(exc_type, match=match):
        techniques.apply(name, model, data, params, out)
    assert time.perf_counter() - t0 < 5.0, "refusal must come before any training"
    left = [p.name for p in out.iterdir()] if out.exists() else []
    assert not any(n.startswith("model") or n == "candidate.json" for n in left), left
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_refuses_sparsity_above_one(baseline_model, sample_dataset, tmp_path):
    _assert_refused(
        ConfigError,
        r"target_sparsity.*1\.2",
        "prune",
        baseline_model,
        sample_dataset,
        {"target_sparsity": 1.2},
        tmp_path / "out",
    )


def test_refuses_zero_clusters(baseline_model, sample_dataset, tmp_path):
    _assert_refused(
        ConfigError,
        r"number_of_clusters.*greater than or equal to 2.*got 0",
        "cluster",
        baseline_model,
        sample_dataset,
        {"number_of_clusters": 0},
        tmp_path / "out",
    )


def test_refuses_int8_without_calibration_data(baseline_model, tmp_path):
    _assert_refused(
        ConfigError,
        r"ptq-int8.*calibration.*no data",
        "ptq-int8",
        baseline_model,
        None,
        {},
        tmp_path / "out",
    )
    _assert_refused(
        ConfigError,
        r"onnx-int8-static.*calibration",
        "onnx-int8-static",
        baseline_model,
        None,
        {},
        tmp_path / "out",
    )


def test_refuses_unknown_technique_listing_names(baseline_model, sample_dataset, tmp_path):
    _assert_refused(
        ConfigError,
        r"unknown technique 'prune-90'.*fp32-tflite.*pcqat-int8",
        "prune-90",
        baseline_model,
        sample_dataset,
        {},
        tmp_path / "out",
    )


def test_refuses_tflite_for_pruning(fp32_tflite, sample_dataset, tmp_path):
    _assert_refused(
        ModelFormatError,
        r"pruning needs a tf_keras model.*is a tflite file",
        "prune",
        fp32_tflite,
        sample_dataset,
        {},
        tmp_path / "out",
    )
    _assert_refused(
        ModelFormatError,
        r"ptq-int8 needs a Keras model.*tflite",
        "ptq-int8",
        fp32_tflite,
        sample_dataset,
        {},
        tmp_path / "out",
    )


def _keras3_file(path: Path, layers: list[dict]) -> Path:
    """A .keras archive as Keras 3 writes it (config and metadata only: no weights needed)."""
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "k3",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 32, 32, 1]}},
                *layers,
            ],
        },
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    return path


def test_keras3_refused_for_tfmot_only_when_the_bridge_cannot_rebuild_it(sample_dataset, tmp_path):
    """A Keras 3 model is rebuilt in tf_keras for tfmot; a layer the bridge cannot map is
    refused in one line naming it, before any framework work; a SavedModel without Keras
    metadata (Keras 3 model.export()) cannot be rebuilt at all."""
    group = {"module": "keras.layers", "class_name": "GroupNormalization"}
    bad = _keras3_file(tmp_path / "k3.keras", [{**group, "config": {"name": "gnorm"}}])
    for name, purpose in (
        ("prune", "pruning"),
        ("cluster", "clustering"),
        ("qat-int8", "quantization-aware training"),
        ("pcqat-int8", "pcqat-int8"),
    ):
        _assert_refused(
            ModelFormatError,
            rf"^k3\.keras: layers Keras 3 -> tf_keras cannot rebuild: GroupNormalization "
            rf"\(layer 'gnorm'\), so {purpose} cannot fine-tune it; techniques that do not "
            r"fine-tune \(ptq-\*, onnx-\*, fp32-\*\) accept it as is$",
            name,
            bad,
            sample_dataset,
            {},
            tmp_path / "out",
        )
    sm = tmp_path / "exported"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\x08\x01")
    _assert_refused(
        ModelFormatError,
        r"model\.export\(\) writes\) holds traced functions, not layers, so it cannot be rebuilt "
        r"as a tf_keras model for pruning; pass the \.keras file instead",
        "prune",
        sm,
        sample_dataset,
        {},
        tmp_path / "out",
    )
    from kfedge.techniques._base import Source, check_tf_keras

    dense = {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": "fc", "units": 10, "activation": "softmax"},
    }
    ok = _keras3_file(tmp_path / "ok.keras", [dense])
    check_tf_keras(Source(ok), "pruning")  # convertible: the technique will rebuild it


def test_refuses_unknown_and_malformed_params(baseline_model, sample_dataset, tmp_path):
    _assert_refused(
        ConfigError,
        r"sparsity: Extra inputs are not permitted.*Accepted parameters:.*"
        r"target_sparsity",
        "prune",
        baseline_model,
        sample_dataset,
        {"sparsity": 0.5},
        tmp_path / "out",
    )
    _assert_refused(
        ConfigError,
        r"must be a JSON object",
        "prune",
        baseline_model,
        sample_dataset,
        "{target: 1",
        tmp_path / "out",
    )
    _assert_refused(
        ConfigError,
        r"sparsity_m_by_n.*1 <= m < n",
        "prune",
        baseline_model,
        sample_dataset,
        {"sparsity_m_by_n": [4, 2]},
        tmp_path / "out",
    )
    _assert_refused(
        ConfigError,
        r"io_dtype.*float32.*int8.*uint8",
        "ptq-int8",
        baseline_model,
        sample_dataset,
        {"io_dtype": "int16"},
        tmp_path / "out",
    )


def test_refuses_missing_train_split(baseline_model, sample_dataset, tmp_path):
    partial = tmp_path / "ds"
    partial.mkdir()
    for f in ("dataset.json", "calibration.npz", "eval.npz"):
        (partial / f).write_bytes((sample_dataset / f).read_bytes())
    _assert_refused(
        Exception, r"no train split", "prune", baseline_model, partial, {}, tmp_path / "out"
    )


# -- FP32 references ------------------------------------------------------------------------


def test_fp32_exports_and_passthrough(baseline_model, fp32_onnx, sample_dataset, tmp_path):
    cand = techniques.apply("fp32-tflite", baseline_model, None, None, tmp_path / "t")
    assert cand.format == "tflite" and cand.stats["passthrough"] is False
    assert set(_tflite_weight_dtypes(tmp_path / "t" / "model.tflite").values()) == {"float32"}
    ref = _accuracy(baseline_model, sample_dataset)
    assert abs(_accuracy(tmp_path / "t" / "model.tflite", sample_dataset) - ref) <= 0.003
    # an ONNX baseline is its own FP32 ONNX reference
    cand = techniques.apply("fp32-onnx", fp32_onnx, None, "", tmp_path / "o")
    assert cand.stats["passthrough"] is True
    assert (tmp_path / "o" / "model.onnx").read_bytes() == fp32_onnx.read_bytes()


# -- TFLite post-training quantization -------------------------------------------------------


def test_ptq_int8_weights_are_int8_and_accuracy(built, sample_dataset, baseline_acc):
    out, cand, secs = built("ptq-int8")
    dtypes = _tflite_weight_dtypes(out / "model.tflite")
    assert len(dtypes) >= 9 and set(dtypes.values()) == {"int8"}, dtypes
    acc = _accuracy(model_path(out), sample_dataset)
    assert baseline_acc - acc <= 0.015, (baseline_acc, acc)
    assert cand.stats["calibration_samples"] > 0
    assert secs < 60


def test_ptq_int8_uint8_io(built, sample_dataset, baseline_acc):
    from ai_edge_litert.interpreter import Interpreter

    out, cand, _ = built("ptq-int8-uint8")
    interp = Interpreter(model_path=str(out / "model.tflite"))
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_output_details()[0]["dtype"] == np.uint8
    assert cand.name == "ptq-int8-uint8io"
    # The runner quantizes float input itself; accuracy holds with integer IO.
    assert baseline_acc - _accuracy(out / "model.tflite", sample_dataset) <= 0.015


def test_ptq_fp16_has_fp16_weights(built, sample_dataset, baseline_acc, fp32_tflite):
    from ai_edge_litert.interpreter import Interpreter

    out, _, _ = built("ptq-fp16")
    tensors = Interpreter(model_path=str(out / "model.tflite")).get_tensor_details()
    fp16 = [t["name"] for t in tensors if t["dtype"] == np.float16]
    assert len(fp16) >= 9, fp16
    assert (out / "model.tflite").stat().st_size < 0.65 * fp32_tflite.stat().st_size
    assert abs(baseline_acc - _accuracy(out / "model.tflite", sample_dataset)) <= 0.005


def test_ptq_dynamic_int8_weights_float_activations(built):
    from ai_edge_litert.interpreter import Interpreter

    out, _, _ = built("ptq-dynamic")
    assert "int8" in set(_tflite_weight_dtypes(out / "model.tflite").values())
    assert (
        Interpreter(model_path=str(out / "model.tflite")).get_input_details()[0]["dtype"]
        == np.float32
    )


# -- ONNX Runtime ----------------------------------------------------------------------------


def test_onnx_static_is_qdq(built, sample_dataset, baseline_acc):
    """Accurate on every x86-64 CPU: with no ISA stated the weights are 7-bit (reduce_range),
    so VPMADDUBSW cannot saturate on CPUs without VNNI (full-range weights lost ~4 points
    here); the same model is computed with and without VNNI."""
    out, cand, _ = built("onnx-static")
    ops = _onnx_ops(out / "model.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, ops
    assert cand.format == "onnx"
    settings = cand.stats["int8_settings"]
    assert settings["reduce_range"] is True and settings["isa"] == "x86-64", settings
    assert "VPMADDUBSW" in settings["reason"]
    assert baseline_acc - _accuracy(out / "model.onnx", sample_dataset) <= 0.01


def test_onnx_dynamic_has_integer_ops(built, sample_dataset, baseline_acc):
    out, _, _ = built("onnx-dynamic")
    ops = _onnx_ops(out / "model.onnx")
    assert ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}, ops
    assert baseline_acc - _accuracy(out / "model.onnx", sample_dataset) <= 0.015


def test_onnx_fp16_keeps_float32_io(built, sample_dataset, baseline_acc):
    import onnx

    out, cand, _ = built("onnx-fp16")
    model = onnx.load(str(out / "model.onnx"))
    f16 = onnx.TensorProto.FLOAT16
    assert any(i.data_type == f16 for i in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert abs(baseline_acc - _accuracy(out / "model.onnx", sample_dataset)) <= 0.005


# -- QAT -------------------------------------------------------------------------------------


def test_qat_int8_accuracy_and_int8_weights(built, sample_dataset, baseline_acc):
    out, cand, secs = built("qat")
    assert set(_tflite_weight_dtypes(out / "model.tflite").values()) == {"int8"}
    acc = _accuracy(out / "model.tflite", sample_dataset)
    assert baseline_acc - acc <= 0.01, (baseline_acc, acc)
    assert cand.stats["preserve"] == "none" and cand.stats["fine_tune_seconds"] > 0
    assert secs < 60


# -- pruning ---------------------------------------------------------------------------------


def test_prune_reaches_target_sparsity_per_kernel(built, sample_dataset, baseline_acc):
    out, cand, secs = built("prune50")
    ks = _kernels(out)
    pruned = cand.stats["pruned_layers"]
    assert len(pruned) >= 5
    for name in pruned:
        assert np.mean(ks[name] == 0) >= 0.5 - 0.01, (name, np.mean(ks[name] == 0))
    assert cand.stats["sparsity"] >= 0.49
    assert set(cand.stats["sparsity_per_layer"]) == set(ks)
    acc = _accuracy(out / "model.tflite", sample_dataset)
    assert baseline_acc - acc <= 0.02, (baseline_acc, acc)
    assert secs < 60


def test_prune_2_by_4_blocks(built):
    out, cand, _ = built("prune2by4")
    ks = _kernels(out)
    pruned = cand.stats["pruned_layers"]
    assert len(pruned) >= 4, cand.stats["skipped_layers"]
    for name in pruned:
        k = ks[name]
        cin = k.shape[-2]
        blocks = np.moveaxis(k, -2, -1).reshape(-1, cin // 4, 4)
        zeros = np.sum(blocks == 0, axis=-1)
        assert zeros.min() >= 2, (name, zeros.min())
    assert cand.name == "prune-2by4"


def test_prune_in_1x4_blocks_on_convolutions_and_dense(built, sample_dataset, baseline_acc):
    """Zeros in whole blocks of 4 input channels, on Conv2D too; they gzip smaller."""
    import gzip

    out, cand, _ = built("prune80x4")
    ks = _kernels(out)
    pruned = cand.stats["pruned_layers"]
    convs = [n for n in pruned if ks[n].ndim == 4]
    assert convs and len(pruned) > len(convs), pruned  # convolutions and the Dense layer
    for name in pruned:
        blocks = _blocks.block_view(ks[name], 4)
        zeros = np.sum(blocks == 0, axis=-2)
        assert set(np.unique(zeros)) <= {0, 4}, name  # every zero sits in a zero block
        assert np.mean(zeros == 4) == pytest.approx(0.8, abs=0.01), name
    assert cand.stats["block_size"] == [1, 4] and cand.stats["block_sparsity"] >= 0.79
    assert cand.stats["mask_updates"] >= 2  # gradual, not one cut
    assert cand.name == "prune-80-1x4"
    acc = _accuracy(out / "model.tflite", sample_dataset)
    # coarser than weight by weight, so it costs more at 80 % on this small model (measured:
    # 0.81 against 0.93 scattered, baseline 0.98); fine-tuning must still keep it far from
    # chance (0.10)
    assert acc >= 0.7, (baseline_acc, acc)
    # the same sparsity scattered weight by weight compresses worse
    scattered, s_cand, _ = built("prune80")
    assert s_cand.stats["sparsity"] == pytest.approx(cand.stats["sparsity"], abs=0.02)
    size = {
        k: len(gzip.compress((d / "model.tflite").read_bytes(), 9))
        for k, d in (("blocks", out), ("scattered", scattered))
    }
    assert size["blocks"] < 0.97 * size["scattered"], size


def test_stripped_equals_wrapped(baseline_model, sample_dataset):
    """Stripping the tfmot wrappers does not change what the model computes."""
    from kfedge.data import load_split
    from kfedge.models import load_keras
    from kfedge.techniques import cluster, prune

    x, _ = load_split(sample_dataset, "eval", 64)
    res = prune.prune_model(load_keras(baseline_model), sample_dataset, prune.Config(epochs=1))
    a = np.asarray(res.wrapped(x, training=False))
    b = np.asarray(res.model(x, training=False))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not any("prune_low_magnitude" in layer.name for layer in res.model.layers)
    res = cluster.cluster_model(
        load_keras(baseline_model), sample_dataset, cluster.Config(epochs=1), False
    )
    a = np.asarray(res.wrapped(x, training=False))
    b = np.asarray(res.model(x, training=False))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not any(layer.name.startswith("cluster_") for layer in res.model.layers)


# -- clustering ------------------------------------------------------------------------------


def test_cluster_unique_values_and_accuracy(built, sample_dataset, baseline_acc):
    out, cand, secs = built("cluster16")
    ks = _kernels(out)
    clustered = cand.stats["clustered_layers"]
    assert clustered and "stem_conv" not in clustered and "probs" not in clustered
    for name in clustered:
        assert np.unique(ks[name]).size <= 16, (name, np.unique(ks[name]).size)
    acc = _accuracy(out / "model.tflite", sample_dataset)
    assert baseline_acc - acc <= 0.02, (baseline_acc, acc)
    assert secs < 60


def test_cluster_on_pruned_candidate_preserves_sparsity(built):
    pdir, pcand, _ = built("prune50")
    out, cand, _ = built("prune50-cluster8")
    assert cand.stats["preserve_sparsity"] is True
    before, after = _kernels(pdir), _kernels(out)
    for name in pcand.stats["pruned_layers"]:
        assert abs(np.mean(after[name] == 0) - np.mean(before[name] == 0)) <= 0.01, name
    for name in cand.stats["clustered_layers"]:
        assert np.unique(after[name]).size <= 8
    # chained metadata
    assert cand.technique == "prune>cluster"
    assert cand.parent == pcand.name == "prune-50"
    assert cand.name == "prune-50-cluster-8"


# -- chains ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_pcqat_keeps_sparsity_in_int8_tflite(built, sample_dataset, baseline_acc):
    out, cand, _ = built("pcqat")
    assert cand.technique == "prune>cluster>pcqat-int8"
    assert cand.stats["qat"]["preserve"] == "sparsity+clusters"
    assert set(_tflite_weight_dtypes(out / "model.tflite").values()) == {"int8"}
    # the stored int8 pointwise kernels keep (about) the pruned half of zeros
    assert cand.stats["stored_weight_sparsity"] >= 0.35
    assert baseline_acc - _accuracy(out / "model.tflite", sample_dataset) <= 0.03


# -- metadata --------------------------------------------------------------------------------


def test_candidate_metadata_round_trips(built):
    out, cand, _ = built("prune50")
    again = load_candidate(out)
    assert again == cand
    assert again.technique == "prune" and again.parent == "baseline"
    assert again.params["target_sparsity"] == 0.5 and again.format == "tflite"
    assert again.keras_file == "keras/model.keras" and (out / again.keras_file).is_file()
    meta = again.kfp_metadata()
    assert meta["technique"] == "prune" and json.loads(meta["params"])["target_sparsity"] == 0.5
    assert meta["sparsity"] >= 0.49 and meta["size_bytes"] > 0
    json.dumps(again.to_dict())  # JSON-friendly


def test_name_override_and_chain_via_candidate_dir(built, sample_dataset, work):
    pdir, _, _ = built("prune50")
    cand = techniques.apply(
        "ptq-dynamic", pdir, sample_dataset, {"name": "my-candidate"}, work / "named"
    )
    assert cand.name == "my-candidate"
    assert cand.technique == "prune>ptq-dynamic" and cand.parent == "prune-50"
    assert load_candidate(work / "named").name == "my-candidate"
