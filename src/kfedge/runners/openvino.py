"""OpenVINO IR (or ONNX) models through OpenVINO Runtime, on CPU, GPU or NPU devices.

OpenVINO runs on Intel and AMD x86 CPUs and on arm64; its CPU plugin uses the instruction set it
finds (AVX2, AVX-512, VNNI, AMX, NEON) for INT8. The compiled model has a pool of infer requests,
one per concurrent caller, so callers never share one request.

Batch 1 (the edge's usual request, and what latency is measured on) runs a model compiled with a
static batch of 1: OpenVINO's CPU plugin plans static shapes ahead and runs them faster than the
same model with a free batch dimension. Another batch size compiles the free-batch model once, on
first use, with its own pool of requests.
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
    ) -> None:
        super().__init__(path, threads)
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
            self._compiled = core.compile_model(
                self._with_batch(self._model, 1), self.device, self._config
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelFormatError(f"{path} is not a loadable OpenVINO model: {exc}") from exc
        self._requests: queue.SimpleQueue[Any] = self._pool(self._compiled)
        self._any_batch: tuple[Any, queue.SimpleQueue[Any]] | None = None
        self._any_batch_lock = threading.Lock()
        self.inputs = [self._spec(p) for p in self._compiled.inputs]
        self.outputs = [self._spec(p) for p in self._compiled.outputs]
        self.version = ov.get_version()

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

    def _for_batch(self, n: int) -> queue.SimpleQueue[Any]:
        """The request pool for a batch of ``n`` (the free-batch model compiled on first use)."""
        if n == 1:
            return self._requests
        with self._any_batch_lock:
            if self._any_batch is None:
                try:
                    compiled = self._core.compile_model(
                        self._with_batch(self._model, -1), self.device, self._config
                    )
                except (RuntimeError, ValueError) as exc:
                    raise ModelFormatError(
                        f"{self.path.name}: cannot compile for batch {n}: {exc}"
                    ) from exc
                self._any_batch = (compiled, self._pool(compiled))
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
        pool = self._for_batch(int(first.shape[0]) if first.ndim else 1)
        req = pool.get()
        try:
            res = req.infer({s.name: feeds[s.name] for s in self.inputs})
            return {s.name: np.array(res[i], copy=True) for i, s in enumerate(self.outputs)}
        finally:
            pool.put(req)

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "device": self.device,
            "requested_device": self.requested_device,
            "fallback_to_cpu": self.fallback_to_cpu,
            "instances": self.instances,
        }
