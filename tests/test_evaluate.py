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
    evaluate,
    gzip_size,
    kfp_metrics,
    load_evaluation,
    save_evaluation,
    weight_stats,
)
from kfedge.runners import load_runner

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
def dyn_eval(candidates, sample_dataset) -> dict:
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
    assert res["num_samples"] == 20
    assert res["accuracy"] == pytest.approx(float(np.mean(pred == y)))
    assert res["confusion_matrix"] == cm.tolist()
    top5 = np.mean([t in np.argsort(-p)[:5] for t, p in zip(y, probs, strict=True)])
    assert res["top5"] == pytest.approx(top5)
    for c in range(10):
        col, row = cm[:, c].sum(), cm[c].sum()
        assert res["per_class"]["precision"][c] == pytest.approx(cm[c, c] / col if col else 0.0)
        assert res["per_class"]["recall"][c] == pytest.approx(cm[c, c] / row if row else 0.0)
    assert res["outputs_sample"]["index"] == 0
    np.testing.assert_allclose(res["outputs_sample"]["values"], probs[0], rtol=1e-5, atol=1e-6)


def test_isolated_evaluation_result(dyn_eval, candidates):
    res = dyn_eval
    assert res["name"] == "ptq-dynamic" and res["technique"] == "ptq-dynamic"
    assert res["format"] == "tflite" and res["parent"] == "baseline"
    assert res["params"] == {"x": 1}
    assert res["num_samples"] == 360
    assert res["accuracy"] > 0.9
    assert res["top5"] >= res["accuracy"]
    assert sum(map(sum, res["confusion_matrix"])) == 360
    lat = res["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["runs"] == 40 and lat["batch"] == 1
    assert res["throughput"]["batch_size"] == 32 and res["throughput"]["batch_N"] > 0
    assert res["threads"] == 2  # KFEDGE_THREADS from conftest
    mem = res["memory"]
    assert mem["isolated"] is True and mem["method"] == "VmHWM"
    assert mem["tensorflow_loaded"] is False  # the timing process held only LiteRT
    assert mem["peak_rss_mb"] >= mem["rss_after_load_mb"] > mem["rss_before_load_mb"] > 0
    model = candidates["ptq-dynamic"] / "model.tflite"
    assert res["size_bytes"] == model.stat().st_size
    assert 0 < res["size_gzip_bytes"] < res["size_bytes"]
    assert res["runtime"]["format"] == "tflite" and res["runtime"]["version"]
    json.dumps(res)  # JSON-serialisable


def test_quantized_kernels_report_their_unique_values(dyn_eval, candidates, sample_dataset):
    # dynamic range quantizes the larger kernels to int8: at most 256 distinct values
    uq = dyn_eval["unique_weights"]
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
    assert MIN_RUNS <= res["latency_ms"]["runs"] < 100000
    assert res["memory"]["isolated"] is False


def test_onnx_and_keras(fp32_onnx, baseline_model, sample_dataset):
    onnx_res = evaluate(fp32_onnx, sample_dataset, limit=50, isolate=False, **FAST)
    keras_res = evaluate(baseline_model, sample_dataset, limit=50, isolate=False, **FAST)
    assert onnx_res["format"] == "onnx" and keras_res["format"] == "keras"
    assert keras_res["technique"] == "baseline" and onnx_res["technique"] == "unknown"
    assert onnx_res["confusion_matrix"] == keras_res["confusion_matrix"]
    assert len(onnx_res["unique_weights"]) == len(keras_res["unique_weights"]) == 10
    assert onnx_res["kernel_weights"] == keras_res["kernel_weights"]
    assert keras_res["params_count"] == 19786  # tf_keras count_params (BN included)


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
    assert load_evaluation(path) == json.loads(json.dumps(dyn_eval))
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    with pytest.raises(InvalidInputError, match="missing keys"):
        load_evaluation(tmp_path / "bad.json")
    (tmp_path / "notjson.json").write_text("nope")
    with pytest.raises(InvalidInputError, match="not an evaluation JSON"):
        load_evaluation(tmp_path / "notjson.json")
    metrics = kfp_metrics(dyn_eval)
    assert metrics["latency_p50_ms"] == dyn_eval["latency_ms"]["p50"]
    assert metrics["size_mb"] == dyn_eval["size_bytes"] / 1e6


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
