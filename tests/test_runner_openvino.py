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


def test_fp32_is_asked_for_and_reported_whatever_the_cpu(ir_model: Path) -> None:
    # OpenVINO's CPU plugin computes FP32 models in bf16 on BF16 CPUs and in f16 on
    # Cortex-A76-class cores unless asked; the runner always asks for f32 and reads it back.
    from kfedge.cpu import detect_isa

    plugin_default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    # what the plugin would do unasked on this CPU (bf16 here on an AVX-512 BF16 EPYC)
    assert plugin_default in ("f32", "bf16", "f16")
    if detect_isa().reduced_float is None:
        assert plugin_default == "f32"
    r = load_runner(ir_model, threads=1)
    assert r.precision == "f32" and r.describe()["precision"] == "f32"
    assert r._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"


def test_a_model_asking_for_bf16_gets_it_only_where_the_cpu_has_it(
    ir_model: Path, tmp_path: Path
) -> None:
    from kfedge.cpu import detect_isa
    from kfedge.runners.openvino import PRECISION_RT_INFO

    model = ov.Core().read_model(str(ir_model))
    model.set_rt_info("bf16", PRECISION_RT_INFO)
    ov.save_model(model, str(tmp_path / "model.xml"), compress_to_fp16=False)
    r = load_runner(tmp_path / "model.xml", threads=1)
    d = r.describe()
    assert d["requested_precision"] == "bf16"
    # bf16 compute is the x86 CPU plugin's (AVX512_BF16 / AMX); elsewhere OpenVINO runs f32
    assert d["precision"] == ("bf16" if detect_isa().reduced_float == "bf16" else "f32")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_runner(ir_model, threads=1, precision="int4")


def test_batches_run_sample_by_sample_where_no_free_batch_compiles(
    ir_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ARM CPU plugin refuses a free batch for NNCF INT8 models (seen under emulated
    # Cortex-A72/A76); the runner then answers a batch with batch-1 requests.
    r = load_runner(ir_model, threads=1)
    x = np.random.default_rng(0).random([3, *r.inputs[0].shape[1:]], dtype=np.float32)
    want = np.concatenate([r.predict(x[i : i + 1]) for i in range(3)])

    def refuse(*args, **kwargs):
        raise RuntimeError(  # the shape of the ARM plugin's message
            "Exception from src/inference/src/cpp/core.cpp:117:\n"
            "Exception from src/inference/src/dev/plugin.cpp:54:\n"
            "Check 'any_of(scale.size(), OC, 1U)' failed at dnnl_postops_composer.cpp:526\n"
        )

    monkeypatch.setattr(r._core, "compile_model", refuse)
    np.testing.assert_allclose(r.predict(x), want, atol=1e-6)
    assert r.describe()["free_batch_error"].startswith("model.xml: Check 'any_of(scale")


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


def test_a_bare_ir_directory_is_a_model(ir_model: Path, tmp_path: Path) -> None:
    """/mnt/models holding only NAME.xml + NAME.bin (an IR uploaded as is) resolves to the .xml;
    a third file makes it ambiguous again, with the IR named in the message."""
    import shutil

    d = tmp_path / "models"
    d.mkdir()
    shutil.copy2(ir_model, d / "net.xml")
    shutil.copy2(ir_model.with_suffix(".bin"), d / "net.bin")
    assert model_path(d) == d / "net.xml"
    assert load_runner(model_path(d)).inputs
    (d / "notes.txt").write_text("x")
    with pytest.raises(ModelFormatError, match=r"OpenVINO IR \(NAME.xml with NAME.bin\)"):
        model_path(d)
