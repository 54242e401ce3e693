"""Reference models written by hand, outside kfedge: what an expert gets from ONNX Runtime alone.

:func:`ort_static_qdq` follows ONNX Runtime's documented CPU recipe for CNNs: pre-process the
FP32 model (``quant_pre_process``: shape inference and graph optimizations), then
``quantize_static`` in QDQ format with per-channel signed INT8 weights, unsigned INT8
activations and MinMax calibration on the same calibration split kfedge uses. It calls
``onnxruntime.quantization`` directly, so it cross-checks kfedge's own ``onnx-int8-static``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: The settings of the hand-tuned reference (stated in the generated text).
ORT_STATIC_SETTINGS = {
    "quant_format": "QDQ",
    "per_channel": True,
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
    "preprocess": "quant_pre_process",
}


def calibration_batches(dataset: Path, samples: int) -> np.ndarray:
    """The first ``samples`` images of the calibration split (float32, N x H x W x C)."""
    from kfedge.data import load_split

    x, _ = load_split(dataset, "calibration", samples)
    return np.asarray(x, dtype=np.float32)


def ort_static_qdq(fp32_onnx: Path, dataset: Path, out: Path, samples: int) -> dict[str, Any]:
    """Quantize ``fp32_onnx`` with ONNX Runtime's recipe (see the module docstring).

    Args:
        fp32_onnx: The FP32 ONNX model (kfedge's ``fp32-onnx`` export).
        dataset: Split dataset directory (its calibration split is used).
        out: Output ``.onnx`` path.
        samples: Calibration samples.

    Returns:
        ``{"path", "seconds", "settings", "calibration_samples"}``.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = calibration_batches(dataset, samples)
    sess = ort.InferenceSession(str(fp32_onnx), providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    del sess

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(range(len(x)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self._it, None)
            return None if i is None else {input_name: x[i : i + 1]}

    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kfedge-bench-ref-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return {
        "path": str(out),
        "seconds": round(time.perf_counter() - t0, 2),
        "settings": dict(ORT_STATIC_SETTINGS),
        "calibration_samples": int(len(x)),
    }
