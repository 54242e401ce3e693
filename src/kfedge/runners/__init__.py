"""One inference interface for every format: TF, TFLite (LiteRT), ONNX Runtime, OpenVINO.

Evaluation and serving use the same runners, so the latency in the report is the latency served.
Callers always hand float (or the model's own) arrays: a TFLite model with integer input/output
(full-integer quantization) is quantized and dequantized here with the tensor's own parameters.
"""

from __future__ import annotations

from pathlib import Path

from kfedge.formats import detect_format
from kfedge.runners.base import Runner, TensorSpec
from kfedge.runners.onnx import OnnxRunner
from kfedge.runners.openvino import OpenVinoRunner
from kfedge.runners.tf import TFRunner
from kfedge.runners.tflite import TFLiteRunner

__all__ = [
    "OnnxRunner",
    "OpenVinoRunner",
    "Runner",
    "TFLiteRunner",
    "TFRunner",
    "TensorSpec",
    "load_runner",
]


def load_runner(
    path: str | Path,
    threads: int | None = None,
    providers: list[str] | None = None,
    spinning: bool = False,
    instances: int = 1,
    provider_options: dict[str, dict[str, str]] | None = None,
    delegate: str | None = None,
    allow_cpu_fallback: bool = True,
    device: str = "CPU",
    precision: str | None = None,
) -> Runner:
    """Open a model with the runner for its format.

    Args:
        path: A .tflite / .onnx / .keras / .h5 file or a SavedModel directory.
        threads: Inference threads (default: ``KFEDGE_THREADS`` or all cores).
        providers: ONNX Runtime execution providers in order of preference; those this
            build lacks are dropped, CPU is the fallback.
        spinning: Let ONNX Runtime worker threads spin between runs (faster in a
            dedicated process, distorting when several models are timed in turn).
        instances: TFLite interpreters in the pool, one per concurrent caller (the threads are
            split between them); ONNX Runtime sessions are thread-safe and need one.
        provider_options: ONNX Runtime options per provider (e.g. OpenVINO ``device_type``).
        delegate: External TFLite delegate library (e.g. ``libedgetpu.so.1``).
        allow_cpu_fallback: When False, a requested accelerator (a non-CPU provider, or the
            delegate) that this node lacks raises :class:`~kfedge.errors.AcceleratorError`;
            when True the runner falls back to the CPU and ``describe()`` says so
            (``fallback_to_cpu``). Nothing falls back silently.
        device: OpenVINO device (``CPU``, ``GPU``, ``NPU``) for OpenVINO IR models.
        precision: The compute precision to ask an OpenVINO model for (``f32``, ``bf16``,
            ``f16``); None: what the model asks for, else ``f32``. The other runtimes
            compute float32 tensors in ``f32`` only, and refuse another.

    Returns:
        A ready :class:`Runner`.
    """
    fmt = detect_format(path)
    if precision not in (None, "f32") and fmt != "openvino":
        raise ValueError(f"a {fmt} model runs in f32 here; {precision} is OpenVINO's only")
    if fmt == "tflite":
        return TFLiteRunner(path, threads, instances, delegate, allow_cpu_fallback)
    if fmt == "openvino":
        return OpenVinoRunner(path, threads, device, instances, allow_cpu_fallback, precision)
    if fmt == "onnx":
        return OnnxRunner(path, threads, providers, spinning, provider_options, allow_cpu_fallback)
    return TFRunner(path, threads, fmt)
