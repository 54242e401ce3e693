"""OpenVINO IR (or ONNX) models through OpenVINO Runtime, on CPU, GPU or NPU devices.

OpenVINO runs on Intel and AMD x86 CPUs and on arm64; its CPU plugin uses the instruction set it
finds (AVX2, AVX-512, VNNI, AMX, NEON) for INT8. The compiled model has a pool of infer requests,
one per concurrent caller, so callers never share one request.
"""

from __future__ import annotations

import queue
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
        try:
            model = core.read_model(str(self.path))
            # a free batch dimension, like the other runners
            shapes = {}
            for inp in model.inputs:
                ps = inp.get_partial_shape()
                if ps.rank.is_static and ps.rank.get_length() > 0:
                    dims = [ps[i] for i in range(ps.rank.get_length())]
                    dims[0] = ov.Dimension(-1)
                    shapes[inp] = ov.PartialShape(dims)
            if shapes:
                model.reshape(shapes)
            config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
            if self.device == "CPU":
                config["INFERENCE_NUM_THREADS"] = int(self.threads)
            self._compiled = core.compile_model(model, self.device, config)
        except (RuntimeError, ValueError) as exc:
            raise ModelFormatError(f"{path} is not a loadable OpenVINO model: {exc}") from exc
        self.instances = max(1, instances)
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.instances):
            self._requests.put(self._compiled.create_infer_request())
        self.inputs = [self._spec(p) for p in self._compiled.inputs]
        self.outputs = [self._spec(p) for p in self._compiled.outputs]
        self.version = ov.get_version()

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
        req = self._requests.get()
        try:
            res = req.infer({s.name: feeds[s.name] for s in self.inputs})
            return {
                s.name: np.array(res[port], copy=True)
                for s, port in zip(self.outputs, self._compiled.outputs)
            }
        finally:
            self._requests.put(req)

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "device": self.device,
            "requested_device": self.requested_device,
            "fallback_to_cpu": self.fallback_to_cpu,
            "instances": self.instances,
        }
