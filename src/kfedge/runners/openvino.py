"""OpenVINO IR (or ONNX) models through OpenVINO Runtime, on CPU, GPU or NPU devices.

OpenVINO runs on Intel and AMD x86 CPUs and on arm64; its CPU plugin uses the instruction set it
finds (AVX2, AVX-512, VNNI, AMX, NEON) for INT8. The compiled model has a pool of infer requests,
one per concurrent caller, so callers never share one request.

Batch 1 (the edge's usual request, and what latency is measured on) runs a model compiled with a
static batch of 1: OpenVINO's CPU plugin plans static shapes ahead and runs them faster than the
same model with a free batch dimension. Another batch size compiles the free-batch model once, on
first use, with its own pool of requests; where the plugin cannot compile a free batch (the ARM
CPU plugin and NNCF INT8 models), a batch runs as batch-1 requests in turn.

Precision is asked for, never left to the CPU: OpenVINO's CPU plugin otherwise computes an FP32
model in bfloat16 on CPUs with AVX512_BF16 or AMX and in float16 on Armv8.2 cores (Cortex-A76),
so an "FP32" answer would depend on the node. The runner passes ``INFERENCE_PRECISION_HINT``:
``f32`` unless the caller asks for another precision or the model asks for one in its
``runtime_options`` (the ``openvino-bf16`` technique writes ``bf16`` there), and reports the
precision the compiled model really uses (``precision``), which may differ from the one asked
(``requested_precision``) where the CPU lacks it.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import AcceleratorError, ModelFormatError
from kfedge.runners.base import Runner, TensorSpec

#: Runtime-graph layer types whose kernels :meth:`OpenVINORunner.kernels` counts.
COMPUTE_LAYERS = frozenset({"Convolution", "Deconvolution", "FullyConnected", "MatMul"})
#: The rt_info path where an IR asks for its compute precision (read by ``compile_model`` too).
PRECISION_RT_INFO = ["runtime_options", "INFERENCE_PRECISION_HINT"]
#: Precisions a caller or a model may ask for.
PRECISIONS = ("f32", "bf16", "f16")


def _cause(exc: Exception) -> str:
    """The line of an OpenVINO error that says what failed (its ``Check ...``), not where."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    checks = [ln for ln in lines if ln.startswith("Check ")]
    return (checks or lines[-1:] or [type(exc).__name__])[0]


class OpenVinoRunner(Runner):
    """OpenVINO Runtime; the device comes from the target profile (``CPU``, ``GPU``, ``NPU``)."""

    format = "openvino"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        device: str = "CPU",
        instances: int = 1,
        allow_cpu_fallback: bool = True,
        precision: str | None = None,
    ) -> None:
        super().__init__(path, threads)
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        ov = compat.openvino()
        core = ov.Core()
        available = list(core.available_devices)
        self.requested_device = device
        self.device = device
        if not any(d == device or d.startswith(device + ".") for d in available):
            if device == "CPU" or not allow_cpu_fallback:
                raise AcceleratorError(
                    f"{Path(path).name}: the target asks for the OpenVINO device {device} but "
                    f"this node offers {available}; schedule on a node that has it, install its "
                    "driver, or allow CPU fallback in the target profile"
                )
            self.device = "CPU"
        self.fallback_to_cpu = self.device != device
        self.instances = max(1, instances)
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.device == "CPU":
            self._config["INFERENCE_NUM_THREADS"] = int(self.threads)
        self._core = core
        try:
            self._model = core.read_model(str(self.path))
            self.requested_precision = precision or self.model_precision(self._model)
            if self.requested_precision is None and self.device == "CPU":
                self.requested_precision = "f32"
            if self.requested_precision is not None:
                self._config["INFERENCE_PRECISION_HINT"] = self.requested_precision
            self._compiled = core.compile_model(
                self._with_batch(self._model, 1), self.device, self._config
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelFormatError(f"{path} is not a loadable OpenVINO model: {exc}") from exc
        self._requests: queue.SimpleQueue[Any] = self._pool(self._compiled)
        self._any_batch: tuple[Any, queue.SimpleQueue[Any] | None] | None = None
        #: Why the free-batch model could not be compiled (batches then run sample by sample).
        self.free_batch_error: str | None = None
        self._any_batch_lock = threading.Lock()
        self.precision = self._effective_precision(self._compiled)
        self.inputs = [self._spec(p) for p in self._compiled.inputs]
        self.outputs = [self._spec(p) for p in self._compiled.outputs]
        self.version = ov.get_version()

    @staticmethod
    def model_precision(model: Any) -> str | None:
        """The precision an IR asks for in its ``runtime_options`` (None: it asks for none)."""
        if not model.has_rt_info(PRECISION_RT_INFO):
            return None
        value = str(model.get_rt_info(PRECISION_RT_INFO).astype(str)).strip().lower()
        if value not in PRECISIONS:
            raise ModelFormatError(
                f"the model asks for INFERENCE_PRECISION_HINT {value!r}; kfedge runs "
                f"{list(PRECISIONS)}"
            )
        return value

    def _effective_precision(self, compiled: Any) -> str | None:
        """The floating-point precision the compiled model computes in (None: not reported)."""
        try:
            return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        except (RuntimeError, AttributeError, TypeError):  # a device that does not report it
            return self.requested_precision

    @staticmethod
    def _with_batch(model: Any, batch: int) -> Any:
        """A copy of ``model`` whose inputs' first dimension is ``batch`` (-1: free)."""
        ov = compat.openvino()
        out = model.clone()
        shapes = {}
        for inp in out.inputs:
            ps = inp.get_partial_shape()
            if ps.rank.is_static and ps.rank.get_length() > 0:
                dims = [ps[i] for i in range(ps.rank.get_length())]
                dims[0] = ov.Dimension(batch)
                shapes[inp] = ov.PartialShape(dims)
        if shapes:
            out.reshape(shapes)
        return out

    def _pool(self, compiled: Any) -> queue.SimpleQueue[Any]:
        pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.instances):
            pool.put(compiled.create_infer_request())
        return pool

    def _for_batch(self, n: int) -> queue.SimpleQueue[Any] | None:
        """The request pool for a batch of ``n`` (the free-batch model compiled on first use).

        None when the plugin cannot compile a free batch: the batch then runs sample by sample.
        """
        if n == 1:
            return self._requests
        with self._any_batch_lock:
            if self._any_batch is None:
                try:
                    compiled = self._core.compile_model(
                        self._with_batch(self._model, -1), self.device, self._config
                    )
                    self._any_batch = (compiled, self._pool(compiled))
                except (RuntimeError, ValueError) as exc:
                    self.free_batch_error = f"{Path(self.path).name}: {_cause(exc)}"
                    self._any_batch = (None, None)
            return self._any_batch[1]

    @staticmethod
    def _spec(port: Any) -> TensorSpec:
        ps = port.get_partial_shape()
        shape = tuple(
            None if i == 0 or ps[i].is_dynamic else int(ps[i].get_length())
            for i in range(ps.rank.get_length())
        )
        dtype = np.dtype(port.get_element_type().to_dtype()).name
        return TensorSpec(port.get_any_name(), shape, dtype)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = feeds[self.inputs[0].name]
        n = int(first.shape[0]) if first.ndim else 1
        pool = self._for_batch(n)
        if pool is None:  # no free-batch model on this plugin: batch-1 requests in turn
            parts = [
                self._infer(self._requests, {k: v[i : i + 1] for k, v in feeds.items()})
                for i in range(n)
            ]
            return {s.name: np.concatenate([p[s.name] for p in parts]) for s in self.outputs}
        return self._infer(pool, feeds)

    def _infer(
        self, pool: queue.SimpleQueue[Any], feeds: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        req = pool.get()
        try:
            res = req.infer({s.name: feeds[s.name] for s in self.inputs})
            return {s.name: np.array(res[i], copy=True) for i, s in enumerate(self.outputs)}
        finally:
            pool.put(req)

    def kernels(self) -> dict[str, int]:
        """How many compute layers run on each CPU kernel (``{"brgconv_avx512_I8": 52, ...}``).

        The compiled model's runtime graph names each layer's kernel: the ISA it was built for
        (``avx2``, ``avx512``, ``amx``...) and its precision (``I8``, ``FP32``, ``BF16``). It
        shows what the CPU plugin really chose, e.g. under ``ONEDNN_MAX_CPU_ISA``. Counts
        convolutions, fully connected layers and matrix products; empty when the device does
        not report kernels.
        """
        out: dict[str, int] = {}
        try:
            ops = self._compiled.get_runtime_model().get_ordered_ops()
        except (RuntimeError, AttributeError):  # a device without a runtime graph
            return out
        for op in ops:
            rt = op.get_rt_info()
            if "layerType" not in rt or "primitiveType" not in rt:
                continue
            if str(rt["layerType"].astype(str)) not in COMPUTE_LAYERS:
                continue
            kernel = str(rt["primitiveType"].astype(str))
            out[kernel] = out.get(kernel, 0) + 1
        return out

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "device": self.device,
            "requested_device": self.requested_device,
            "fallback_to_cpu": self.fallback_to_cpu,
            "instances": self.instances,
            "requested_precision": self.requested_precision,
            **({"free_batch_error": self.free_batch_error} if self.free_batch_error else {}),
        }
