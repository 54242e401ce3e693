"""Evaluation of real candidates: accuracy vs a hand computation, latency, size, sparsity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kfedge.candidate import Candidate, save_candidate
from kfedge.data import load_split, save_npz
from kfedge.errors import ConfigError, DataError, InvalidInputError
from kfedge.evaluate import (
    MIN_RUNS,
    Evaluation,
    evaluate,
    evaluate_from_files,
    gzip_size,
    kfp_metrics,
    load_evaluation,
    save_evaluation,
    weight_stats,
)
from kfedge.runners import load_runner

DATA = Path(__file__).parent / "data"
FAST = {"latency_runs": 40, "warmup": 5, "time_budget_s": 5.0}


@pytest.fixture(scope="module")
def candidates(baseline_model: Path, fp32_tflite: Path, tmp_path_factory) -> dict[str, Path]:
    """fp32 plus two cheap optimized TFLite candidates (dynamic range, float16), as directories."""
    from kfedge import compat
    from kfedge.convert import convert_tflite

    tf = compat.tf()

    def dynamic(conv):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def fp16(conv):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]

    root = tmp_path_factory.mktemp("cands")
    out = {}
    for name, technique, configure in (
        ("fp32-tflite", "fp32", None),
        ("ptq-dynamic", "ptq-dynamic", dynamic),
        ("ptq-fp16", "ptq-fp16", fp16),
    ):
        d = root / name
        convert_tflite(baseline_model, d / "model.tflite", configure)
        save_candidate(
            Candidate(name, technique, "tflite", "model.tflite", {"x": 1}, "baseline"), d
        )
        out[name] = d
    return out


@pytest.fixture(scope="module")
def dyn_eval(candidates, sample_dataset) -> Evaluation:
    return evaluate(candidates["ptq-dynamic"], sample_dataset, **FAST)


def test_accuracy_and_confusion_match_a_hand_computation(candidates, sample_dataset):
    res = evaluate(
        candidates["ptq-fp16"], sample_dataset, limit=20, batch_size=7, isolate=False, **FAST
    )
    x, y = load_split(sample_dataset, "eval", limit=20)
    with load_runner(candidates["ptq-fp16"] / "model.tflite") as runner:
        probs = runner.predict(x)
    pred = probs.argmax(axis=1)
    cm = np.zeros((10, 10), dtype=int)
    for t, p in zip(y, pred, strict=True):
        cm[t, p] += 1
    assert res.num_samples == 20
    assert res.accuracy == pytest.approx(float(np.mean(pred == y)))
    assert res.confusion_matrix == cm.tolist()
    top5 = np.mean([t in np.argsort(-p)[:5] for t, p in zip(y, probs, strict=True)])
    assert res.top5 == pytest.approx(top5)
    for c in range(10):
        col, row = cm[:, c].sum(), cm[c].sum()
        assert res.per_class.precision[c] == pytest.approx(cm[c, c] / col if col else 0.0)
        assert res.per_class.recall[c] == pytest.approx(cm[c, c] / row if row else 0.0)
    assert res.outputs_sample.index == 0
    np.testing.assert_allclose(res.outputs_sample.values, probs[0], rtol=1e-5, atol=1e-6)


def test_isolated_evaluation_result(dyn_eval, candidates):
    res = dyn_eval
    assert res.name == "ptq-dynamic" and res.technique == "ptq-dynamic"
    assert res.format == "tflite" and res.parent == "baseline"
    assert res.params == {"x": 1}
    assert res.num_samples == 360
    assert res.accuracy > 0.9
    assert res.top5 >= res.accuracy
    assert sum(map(sum, res.confusion_matrix)) == 360
    lat = res.latency_ms
    assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
    assert lat.runs == 40 and lat.batch == 1
    assert res.throughput.batch_size == 32 and res.throughput.batch_N > 0
    assert res.threads == 2  # KFEDGE_THREADS from conftest
    mem = res.memory
    assert mem.isolated is True and mem.method == "VmHWM"
    assert mem.tensorflow_loaded is False  # the timing process held only LiteRT
    assert mem.peak_rss_mb >= mem.rss_after_load_mb > mem.rss_before_load_mb > 0
    model = candidates["ptq-dynamic"] / "model.tflite"
    assert res.size_bytes == model.stat().st_size
    assert 0 < res.size_gzip_bytes < res.size_bytes
    assert res.runtime.format == "tflite" and res.runtime.version
    assert json.loads(res.to_json()) == res.to_dict()  # JSON-serialisable
    # the keys of kfedge 0.1.0, plus the per-sample correctness (for McNemar's test)
    old = json.loads((DATA / "evaluation-0.1.0-tflite.json").read_text())
    assert set(res.to_dict()) == set(old) | {"sample_correct"}
    assert res.sample_correct.count == 360 and res.sample_correct.split == "eval"
    assert res.sample_correct.to_array().mean() == pytest.approx(res.accuracy)
    assert set(res.to_dict()["memory"]) == set(old["memory"])


def test_quantized_kernels_report_their_unique_values(dyn_eval, candidates, sample_dataset):
    # dynamic range quantizes the larger kernels to int8: at most 256 distinct values
    uq = dyn_eval.unique_weights
    assert len(uq) == 10  # 5 conv + 4 depthwise + 1 dense kernels
    assert max(uq[k] for k in uq if "b3_pw" in k) <= 256
    fp32 = weight_stats(candidates["fp32-tflite"] / "model.tflite")
    assert max(fp32["unique_weights"][k] for k in fp32["unique_weights"] if "b3_pw" in k) > 256


def test_latency_budget_stops_early_but_keeps_minimum_runs(candidates, sample_dataset):
    res = evaluate(
        candidates["fp32-tflite"],
        sample_dataset,
        latency_runs=100000,
        warmup=1,
        time_budget_s=0.01,
        isolate=False,
        limit=10,
    )
    assert MIN_RUNS <= res.latency_ms.runs < 100000
    assert res.memory.isolated is False
    old = json.loads((DATA / "evaluation-0.1.0-keras.json").read_text())  # also in-process
    assert set(res.to_dict()) == set(old) | {"sample_correct"}
    assert set(res.to_dict()["memory"]) == set(old["memory"])


def test_onnx_and_keras(fp32_onnx, baseline_model, sample_dataset):
    onnx_res = evaluate(fp32_onnx, sample_dataset, limit=50, isolate=False, **FAST)
    keras_res = evaluate(baseline_model, sample_dataset, limit=50, isolate=False, **FAST)
    assert onnx_res.format == "onnx" and keras_res.format == "keras"
    assert keras_res.technique == "baseline" and onnx_res.technique == "unknown"
    assert onnx_res.confusion_matrix == keras_res.confusion_matrix
    assert len(onnx_res.unique_weights) == len(keras_res.unique_weights) == 10
    assert onnx_res.kernel_weights == keras_res.kernel_weights
    assert keras_res.params_count == 19786  # tf_keras count_params (BN included)


def test_an_onnx_model_evaluates_on_a_node_without_the_onnx_package(
    fp32_onnx, sample_dataset, tmp_path
):
    # The edge image installs kfedge[serving], which has ONNX Runtime but not `onnx`: the
    # evaluation still measures accuracy and latency, and says why weight statistics are absent.
    code = (
        "import sys; sys.modules['onnx'] = None\n"  # import onnx -> ImportError, as when absent
        "from kfedge.evaluate import evaluate\n"
        f"ev = evaluate({str(fp32_onnx)!r}, {str(sample_dataset)!r}, limit=50, isolate=False, "
        "latency_runs=40, warmup=5, time_budget_s=5.0)\n"
        "print(ev.to_json())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    ev = json.loads(out.stdout[out.stdout.index("{") :])
    assert ev["format"] == "onnx" and ev["accuracy"] > 0.5 and ev["latency_ms"]["p50"] > 0
    assert "onnx" in ev["weights_unavailable"] and ev.get("sparsity") is None


def test_sparsity_of_a_model_with_zeroed_weights(baseline_model, sample_dataset, tmp_path):
    from kfedge.convert import convert_onnx, convert_tflite
    from kfedge.models import load_keras, save_keras

    model = load_keras(baseline_model)
    zeros = total = 0
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" in w.name:
                v = w.numpy()
                flat = v.reshape(-1).copy()
                flat[: flat.size * 3 // 4] = 0.0  # three quarters of every kernel
                w.assign(flat.reshape(v.shape))
                zeros += int(np.sum(flat == 0))
                total += flat.size
    sparse = save_keras(model, tmp_path / "sparse.keras")
    expected = zeros / total
    assert weight_stats(sparse)["sparsity"] == pytest.approx(expected)
    tfl = convert_tflite(sparse, tmp_path / "sparse.tflite")
    onx = convert_onnx(sparse, tmp_path / "sparse.onnx")
    assert weight_stats(tfl)["sparsity"] == pytest.approx(expected, abs=1e-9)
    assert weight_stats(onx)["sparsity"] == pytest.approx(expected, abs=1e-9)
    dense = weight_stats(baseline_model)["sparsity"]
    assert dense < 0.01
    # zeros compress: gzip of the sparse file is much smaller than of the dense one
    assert gzip_size(tfl) < 0.5 * gzip_size(convert_tflite(baseline_model, tmp_path / "d.tflite"))


def test_save_and_load(dyn_eval, tmp_path):
    path = save_evaluation(dyn_eval, tmp_path / "e" / "eval.json")
    loaded = load_evaluation(path)
    assert isinstance(loaded, Evaluation) and loaded == dyn_eval
    assert json.loads(path.read_text()) == dyn_eval.to_dict()
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    with pytest.raises(InvalidInputError, match="missing keys"):
        load_evaluation(tmp_path / "bad.json")
    (tmp_path / "notjson.json").write_text("nope")
    with pytest.raises(InvalidInputError, match="not an evaluation JSON"):
        load_evaluation(tmp_path / "notjson.json")
    metrics = kfp_metrics(dyn_eval)
    assert metrics == dyn_eval.kfp_metrics()
    assert metrics["latency_p50_ms"] == dyn_eval.latency_ms.p50
    assert metrics["size_mb"] == dyn_eval.size_bytes / 1e6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency_runs": 0}, "latency_runs must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"split": "test"}, "split must be one of train, calibration, eval, got 'test'"),
        ({"limit": 0}, "limit must be an integer >= 1"),
        ({"threads": -1}, "threads must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused_before_loading(kwargs, message, tmp_path):
    # the model does not even exist: the argument is refused first
    with pytest.raises(ConfigError, match=message):
        evaluate(tmp_path / "missing.tflite", tmp_path, **kwargs)


def test_dataset_that_does_not_fit_the_model(fp32_tflite, tmp_path):
    save_npz(tmp_path / "wrong.npz", np.zeros((4, 28, 28, 1), np.float32), np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"samples have shape \[28, 28, 1\].*expects \[32, 32, 1\]"):
        evaluate(fp32_tflite, tmp_path / "wrong.npz", **FAST)
    save_npz(
        tmp_path / "labels.npz",
        np.zeros((4, 32, 32, 1), np.float32),
        np.array([0, 1, 2, 12], np.int64),
    )
    with pytest.raises(DataError, match=r"labels must lie in \[0, 10\).*\[0, 12\]"):
        evaluate(fp32_tflite, tmp_path / "labels.npz", **FAST)
    ds = tmp_path / "five"
    ds.mkdir()
    save_npz(ds / "eval.npz", np.zeros((4, 32, 32, 1), np.float32), np.zeros(4, np.int64))
    (ds / "dataset.json").write_text(
        json.dumps(
            {"classes": list("abcde"), "input_shape": [32, 32, 1], "counts": {}, "source": "t"}
        )
    )
    with pytest.raises(DataError, match="has 5 classes, but the model output"):
        evaluate(fp32_tflite, ds, **FAST)


def test_cli(fp32_tflite, sample_dataset, tmp_path):
    env = {**os.environ, "KFEDGE_THREADS": "1"}
    out = tmp_path / "cli.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfedge.evaluate",
            str(fp32_tflite),
            str(sample_dataset),
            "--name",
            "cli-fp32",
            "--json",
            str(out),
            "--runs",
            "30",
            "--warmup",
            "2",
            "--limit",
            "40",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["name"] == "cli-fp32" and res["num_samples"] == 40 and res["threads"] == 1
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfedge.evaluate",
            str(tmp_path / "nope.tflite"),
            str(sample_dataset),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: model not found")


def test_evaluate_from_files_uses_the_target_and_writes_the_file(
    fp32_onnx, sample_dataset, tmp_path
):
    out = tmp_path / "ev" / "evaluation.json"
    ev = evaluate_from_files(
        fp32_onnx, sample_dataset, out, name="fp32-onnx", latency_runs=30, target="cpu-amd64"
    )
    assert ev.name == "fp32-onnx" and ev.target == "cpu-amd64"
    assert ev.runtime.providers == ["CPUExecutionProvider"]  # the target's providers
    assert load_evaluation(out) == ev
    meta = ev.kfp_metadata()
    assert meta == {
        "name": "fp32-onnx",
        "technique": "unknown",
        "format": "onnx",
        "accuracy": ev.accuracy,
        "size_bytes": ev.size_bytes,
        "latency_p50_ms": ev.latency_ms.p50,
    }


# -- the typed result: files of kfedge 0.1.0, round trip, bad files ------------------------------
@pytest.mark.parametrize("name", ["evaluation-0.1.0-tflite.json", "evaluation-0.1.0-keras.json"])
def test_evaluation_files_of_0_1_0_load_and_round_trip(name, tmp_path):
    raw = json.loads((DATA / name).read_text())
    ev = load_evaluation(DATA / name)
    assert ev.name == raw["name"] and ev.technique == raw["technique"]
    assert ev.latency_ms.p50 == raw["latency_ms"]["p50"]
    assert ev.throughput.batch_N == raw["throughput"]["batch_N"]
    assert ev.memory.peak_rss_mb == raw["memory"]["peak_rss_mb"] == ev.peak_rss_mb
    assert ev.memory.isolated is raw["isolated"]
    assert ev.per_class.support == raw["per_class"]["support"]
    assert ev.runtime.format == raw["format"] and ev.machine.arch == raw["machine"]["arch"]
    rec = ev.outputs_sample
    assert (rec.index, rec.split, rec.output_name) == (
        0,
        "eval",
        raw["outputs_sample"]["output_name"],
    )
    assert rec.values == raw["outputs_sample"]["values"]
    # written back unchanged: same keys, same values
    assert ev.to_dict() == raw
    assert json.loads(save_evaluation(ev, tmp_path / "again.json").read_text()) == raw
    m = ev.kfp_metrics()
    assert m["latency_p99_ms"] == raw["latency_ms"]["p99"]
    assert m["throughput_batch_n"] == raw["throughput"]["batch_N"]
    assert m["gzip_mb"] == raw["size_gzip_bytes"] / 1e6


def test_minimal_and_unknown_keys_are_kept(tmp_path):
    data = {
        "name": "m",
        "technique": "fp32",
        "format": "tflite",
        "accuracy": 0.5,
        "latency_ms": {"p50": 1.0, "p42": 0.9},
        "size_bytes": 10,
        "note": "hand-written",
    }
    f = tmp_path / "m.json"
    f.write_text(json.dumps(data))
    ev = load_evaluation(f)
    assert ev.top5 is None and ev.throughput is None and ev.outputs_sample is None
    assert ev.to_dict() == data  # nothing invented, nothing lost
    assert ev.kfp_metrics() == {"accuracy": 0.5, "latency_p50_ms": 1.0, "size_mb": 1e-05}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nope", "is not an evaluation JSON file"),
        ("[1, 2]", "not a kfedge evaluation: expected a JSON object, got list"),
        ('{"name": "x", "accuracy": 1}', r"missing keys \['technique', 'format', 'latency_ms'"),
        (
            '{"name": "x", "technique": "t", "format": "onnx", "accuracy": "high", '
            '"latency_ms": {"p50": 1}, "size_bytes": 1}',
            r"accuracy: .*number.*\(got 'high'\)",
        ),
        (
            '{"name": "x", "technique": "t", "format": "onnx", "accuracy": 1, '
            '"latency_ms": {"p90": 1}, "size_bytes": 1}',
            r"latency_ms\.p50: Field required",
        ),
    ],
)
def test_bad_evaluation_files_are_refused_clearly(content, message, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        load_evaluation(f)
    with pytest.raises(InvalidInputError, match="evaluation file not found"):
        load_evaluation(tmp_path / "missing.json")


def test_outputs_sample_is_read_from_an_evaluation_or_a_selection(tmp_path):
    from kfedge.evaluation import load_outputs_sample

    raw = json.loads((DATA / "evaluation-0.1.0-tflite.json").read_text())
    sel = tmp_path / "selection.json"
    sel.write_text(json.dumps({"selected": raw["name"], "outputs_sample": raw["outputs_sample"]}))
    for f in (DATA / "evaluation-0.1.0-tflite.json", sel):
        assert load_outputs_sample(f).values == raw["outputs_sample"]["values"]
    sel.write_text(json.dumps({"selected": None}))
    with pytest.raises(InvalidInputError, match="has no outputs_sample"):
        load_outputs_sample(sel)


def test_tflite_kernels_dequantize_to_the_float_weights(candidates):
    from kfedge.weights import TFLITE_KERNEL_OPS, tflite_kernels

    fp32 = tflite_kernels(candidates["fp32-tflite"] / "model.tflite")
    dyn = tflite_kernels(candidates["ptq-dynamic"] / "model.tflite")
    assert list(fp32) == list(dyn) and len(dyn) == 10  # same ops, keyed op#index
    assert {k.op for k in dyn.values()} <= set(TFLITE_KERNEL_OPS)
    quantized = [k for k in dyn.values() if k.dtype == "int8"]
    assert quantized and all(k.scales.size == k.values.shape[0] for k in quantized)
    for key, q in dyn.items():
        ref = fp32[key].values
        assert fp32[key].dtype == "float32" and q.values.shape == ref.shape
        if q.dtype == "int8":  # within half a quantization step of the float weight
            half_step = (q.scales / 2).reshape((-1,) + (1,) * (ref.ndim - 1))
            assert np.all(np.abs(q.dequantized() - ref) <= half_step + 1e-6), key
        else:
            np.testing.assert_array_equal(q.dequantized(), ref)


def test_openvino_ir_weight_stats_match_the_onnx_model(fp32_onnx, tmp_path):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "ir" / "model.xml"
    ov.save_model(ov.convert_model(str(fp32_onnx)), str(xml), compress_to_fp16=True)
    ir, onx = weight_stats(xml), weight_stats(fp32_onnx)
    assert ir["kernel_weights"] == onx["kernel_weights"] and len(ir["unique_weights"]) == 10
    assert ir["sparsity"] == pytest.approx(onx["sparsity"], abs=1e-9)
    # float16 storage: the values are read as stored (fewer distinct values than float32)
    assert max(ir["unique_weights"].values()) < max(onx["unique_weights"].values())
    assert gzip_size(xml) > gzip_size(xml.with_suffix(".bin")) > 0  # xml + its weights file


def test_timing_options_travel_to_the_isolated_child_unchanged():
    import argparse

    from kfedge.timing import TimingOptions, add_timing_options

    ap = argparse.ArgumentParser()
    add_timing_options(ap)
    for opts in (
        TimingOptions(),
        TimingOptions("calibration", 3, 8, 55, 0, ["CUDAExecutionProvider", "CPU"], 2.5),
    ):
        assert TimingOptions.from_args(ap.parse_args(opts.to_argv())) == opts.check()
    with pytest.raises(ConfigError, match="time_budget_s must be a number > 0, got 0"):
        TimingOptions(time_budget_s=0).check()
