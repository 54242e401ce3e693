"""No silent fallback: a runner records what really ran, and refuses an absent accelerator."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfedge.candidate import model_path
from kfedge.errors import AcceleratorError
from kfedge.runners import load_runner


def test_onnx_absent_provider_refused_in_one_line(fp32_onnx: Path) -> None:
    with pytest.raises(AcceleratorError) as err:
        load_runner(
            model_path(fp32_onnx),
            threads=1,
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
            allow_cpu_fallback=False,
        )
    msg = str(err.value)
    assert "CUDAExecutionProvider" in msg and "\n" not in msg
    assert "allow CPU fallback" in msg


def test_onnx_fallback_when_allowed_is_recorded(fp32_onnx: Path) -> None:
    r = load_runner(
        model_path(fp32_onnx),
        threads=1,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        allow_cpu_fallback=True,
    )
    d = r.describe()
    assert d["providers"] == ["CPUExecutionProvider"]
    assert d["requested_providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert d["fallback_to_cpu"] is True


def test_onnx_cpu_target_is_not_a_fallback(fp32_onnx: Path) -> None:
    r = load_runner(model_path(fp32_onnx), threads=1, allow_cpu_fallback=False)
    assert r.describe()["fallback_to_cpu"] is False


def test_tflite_absent_delegate(fp32_tflite: Path) -> None:
    path = model_path(fp32_tflite)
    with pytest.raises(AcceleratorError, match=r"libedgetpu\.so\.1"):
        load_runner(path, threads=1, delegate="libedgetpu.so.1", allow_cpu_fallback=False)
    r = load_runner(path, threads=1, delegate="libedgetpu.so.1", allow_cpu_fallback=True)
    d = r.describe()
    assert d["fallback_to_cpu"] is True and d["delegate"] is None
    assert d["requested_delegate"] == "libedgetpu.so.1"
