"""OpenVINO runner: IR detected by content, answers like ONNX Runtime, no silent device fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kfedge.candidate import model_path
from kfedge.errors import AcceleratorError, ModelFormatError
from kfedge.formats import detect_format
from kfedge.runners import load_runner

ov = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def ir_model(fp32_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ir") / "model.xml"
    ov.save_model(ov.convert_model(str(model_path(fp32_onnx))), str(out), compress_to_fp16=False)
    return out


def test_ir_is_detected_and_needs_its_weights(ir_model: Path, tmp_path: Path) -> None:
    assert detect_format(ir_model) == "openvino"
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(ir_model.read_bytes())
    with pytest.raises(ModelFormatError, match=r"without its weights file lonely\.bin"):
        detect_format(lonely)


def test_openvino_answers_like_onnx_runtime(ir_model: Path, fp32_onnx: Path) -> None:
    ovr = load_runner(ir_model, threads=1, instances=2)
    ort = load_runner(model_path(fp32_onnx), threads=1)
    shape = [1 if d is None else d for d in ort.inputs[0].shape]
    for n in (1, 4, 1, 3):  # batch 1 on the static model, others on the free-batch one
        x = np.random.default_rng(n).random([n, *shape[1:]], dtype=np.float32)
        np.testing.assert_allclose(ovr.predict(x), ort.predict(x), atol=1e-4)
    assert ovr._compiled.inputs[0].get_partial_shape()[0].get_length() == 1  # static batch 1
    d = ovr.describe()
    assert d["format"] == "openvino" and d["device"] == "CPU" and d["fallback_to_cpu"] is False
    assert ovr.inputs[0].shape[0] is None  # free batch dimension


def test_absent_device_refused_or_marked(ir_model: Path) -> None:
    with pytest.raises(AcceleratorError, match="NPU"):
        load_runner(ir_model, threads=1, device="NPU", allow_cpu_fallback=False)
    r = load_runner(ir_model, threads=1, device="NPU", allow_cpu_fallback=True)
    assert r.describe()["device"] == "CPU" and r.describe()["fallback_to_cpu"] is True


def test_model_server_loads_ir_on_the_requested_device(ir_model: Path) -> None:
    from kfedge.serving.model import EdgeModel

    m = EdgeModel("ov", ir_model, threads=1, device="NPU", infer_workers=1)
    m.load()
    try:
        d = m.runner.describe()
        # no NPU on a CI machine: the server's runner fell back to the CPU and says so
        assert d["device"] in ("CPU", "NPU")
        assert d["fallback_to_cpu"] is (d["device"] == "CPU")
        assert d["requested_device"] == "NPU"
    finally:
        m.stop()
