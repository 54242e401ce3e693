from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from kfedge.data import load_split
from kfedge.errors import InvalidInputError, ModelFormatError
from kfedge.runners import OnnxRunner, TFLiteRunner, load_runner


@pytest.fixture(scope="module")
def batch(sample_dataset: Path) -> np.ndarray:
    x, _ = load_split(sample_dataset, "eval", limit=16)
    return x


@pytest.fixture(scope="module")
def savedmodel(baseline_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kfedge.models import export_savedmodel

    return export_savedmodel(baseline_model, tmp_path_factory.mktemp("sm"))


def test_all_runners_agree_within_1e_4(baseline_model, savedmodel, fp32_tflite, fp32_onnx, batch):
    outs = {}
    for path in (baseline_model, savedmodel, fp32_tflite, fp32_onnx):
        r = load_runner(path, threads=1)
        assert len(r.inputs) == 1 and r.inputs[0].shape == (None, 32, 32, 1)
        assert r.outputs[0].shape == (None, 10)
        outs[r.format] = r.predict(batch)
        assert outs[r.format].shape == (16, 10)
    ref = outs["keras"]
    for fmt, out in outs.items():
        assert np.max(np.abs(out - ref)) < 1e-4, fmt
    assert (ref.argmax(1) == outs["tflite"].argmax(1)).all()


def test_tflite_batch_resize_and_back(fp32_tflite, batch):
    r = load_runner(fp32_tflite)
    one = r.predict(batch[:1])
    many = r.predict(batch)
    again = r.predict(batch[:1])
    assert one.shape == (1, 10) and many.shape == (16, 10)
    np.testing.assert_allclose(one[0], many[0], atol=1e-5)
    np.testing.assert_allclose(one, again, atol=1e-6)


def test_tflite_runner_is_safe_under_concurrency(fp32_tflite, batch):
    r = load_runner(fp32_tflite, threads=1)
    expected = [r.predict(batch[i : i + 1 + i % 3]) for i in range(8)]
    errors: list[str] = []

    def worker(i: int) -> None:
        for _ in range(25):
            got = r.predict(batch[i : i + 1 + i % 3])
            if got.shape != expected[i].shape or not np.allclose(got, expected[i], atol=1e-5):
                errors.append(f"thread {i}: wrong answer")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_onnx_providers_fall_back_to_cpu_and_threads_recorded(fp32_onnx):
    r = load_runner(
        fp32_onnx, threads=1, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert isinstance(r, OnnxRunner)
    assert r.providers == ["CPUExecutionProvider"]
    assert r.describe()["threads"] == 1


def test_int8_io_tflite_is_quantized_by_the_runner(baseline_model, sample_dataset, tmp_path, batch):
    from kfedge import compat
    from kfedge.convert import convert_tflite

    tf = compat.tf()
    x_cal, _ = load_split(sample_dataset, "calibration", limit=64)

    def configure(conv):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x_cal[i : i + 1]] for i in range(len(x_cal)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8

    path = convert_tflite(baseline_model, tmp_path / "int8.tflite", configure)
    r = load_runner(path)
    assert isinstance(r, TFLiteRunner)
    assert r.raw_io["inputs"][0]["dtype"] == "uint8" and r.raw_io["inputs"][0]["quant"]
    assert r.inputs[0].dtype == "float32"  # callers pass float; the runner quantizes
    ref = load_runner(baseline_model).predict(batch)
    got = r.predict(batch)
    assert got.dtype == np.float32
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert np.abs(got - ref).max() < 0.1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((2, 28, 28, 1), np.float32), "expects shape [-1, 32, 32, 1]"),
        (np.zeros((32, 32, 1), np.float32), "expects shape [-1, 32, 32, 1]"),
        (np.array([["a"]]), "must be numeric"),
        (np.full((1, 32, 32, 1), np.nan, np.float32), "NaN"),
        (np.zeros((0, 32, 32, 1), np.float32), "empty batch"),
    ],
)
def test_bad_input_is_refused_with_what_was_expected(fp32_tflite, fp32_onnx, value, message):
    for path in (fp32_tflite, fp32_onnx):
        r = load_runner(path)
        with pytest.raises(InvalidInputError) as exc:
            r.predict(value)
        assert message in str(exc.value)


def test_dict_inputs_missing_or_extra(fp32_onnx, batch):
    r = load_runner(fp32_onnx)
    assert r.run({"image": batch[:2]})["probs"].shape == (2, 10)
    with pytest.raises(InvalidInputError, match="missing \\['image'\\], unexpected \\['pixels'\\]"):
        r.run({"pixels": batch[:2]})


def test_corrupt_model_gives_clear_error(tmp_path, fp32_tflite):
    bad = tmp_path / "broken.tflite"
    data = fp32_tflite.read_bytes()
    bad.write_bytes(data[:64])  # keeps the TFL3 identifier, truncated body
    with pytest.raises(ModelFormatError, match="broken.tflite"):
        load_runner(bad)


def test_keras3_model_runs_through_savedmodel_and_converts(tmp_path, batch):
    import keras  # Keras 3, beside tf_keras

    from kfedge.convert import convert_onnx, convert_tflite
    from kfedge.models import export_savedmodel, is_keras3_file

    inp = keras.Input((32, 32, 1), name="image")
    out = keras.layers.Dense(10, activation="softmax", name="probs")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    path = tmp_path / "k3.keras"
    model.save(path)
    assert is_keras3_file(path)
    ref = np.asarray(model(batch))
    sm = export_savedmodel(path, tmp_path)
    got_sm = load_runner(sm).predict(batch)
    got_tfl = load_runner(convert_tflite(path, tmp_path / "k3.tflite")).predict(batch)
    got_onnx = load_runner(convert_onnx(path, tmp_path / "k3.onnx")).predict(batch)
    for got in (got_sm, got_tfl, got_onnx):
        assert np.abs(got - ref).max() < 1e-4


def test_keras3_file_refused_for_tfmot_with_advice(tmp_path):
    import keras

    from kfedge.models import load_keras

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    path = tmp_path / "k3.keras"
    model.save(path)
    with pytest.raises(ModelFormatError, match="saved by Keras 3.*tf_keras"):
        load_keras(path)
