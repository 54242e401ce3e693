"""ONNX models through ONNX Runtime (spinning off by default, provider fallback).

Precision is pinned: the CPU provider computes float tensors in float32 as the graph says, and
the one switch that would lower it on Arm (``mlas.enable_gemm_fastmath_arm64_bfloat16``, GEMMs
in bfloat16 on Arm cores with BF16) is set off explicitly. An accelerator provider computes in
what its options ask for (TensorRT ``trt_fp16_enable``, OpenVINO ``precision``): the runner
reports that as ``precision``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import AcceleratorError, ModelFormatError
from kfedge.runners.base import Runner, TensorSpec

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


#: ONNX Runtime's CPU provider: always available, the fallback.
CPU = "CPUExecutionProvider"
#: Session options that would trade precision for speed, each pinned to the exact setting.
EXACT_SESSION_CONFIG = {"mlas.enable_gemm_fastmath_arm64_bfloat16": "0"}


def provider_precision(provider: str, options: dict[str, str]) -> str:
    """The precision a provider computes float32 tensors in, given its options."""
    if provider == "TensorrtExecutionProvider":
        on = str(options.get("trt_fp16_enable", "")).lower() in ("1", "true")
        return "f16" if on else "f32"
    if provider == "OpenVINOExecutionProvider":
        return {"FP16": "f16", "BF16": "bf16"}.get(str(options.get("precision", "")).upper(), "f32")
    return "f32"


class OnnxRunner(Runner):
    """ONNX Runtime; providers chosen from what the target offers and this build has."""

    format = "onnx"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        spinning: bool = False,
        provider_options: dict[str, dict[str, str]] | None = None,
        allow_cpu_fallback: bool = True,
    ) -> None:
        super().__init__(path, threads)
        ort = compat.onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Spinning worker threads distort side-by-side timing on small machines.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        for key, value in EXACT_SESSION_CONFIG.items():
            opts.add_session_config_entry(key, value)
        self.requested_providers = list(providers or [CPU])
        available = ort.get_available_providers()
        wanted = [p for p in self.requested_providers if p in available] or [CPU]
        options = [dict((provider_options or {}).get(p, {})) for p in wanted]
        try:
            self._sess = ort.InferenceSession(
                self.path, opts, providers=wanted, provider_options=options
            )
        except Exception as exc:  # ORT raises its own exception types
            raise ModelFormatError(f"{path} is not a loadable ONNX model: {exc}") from exc
        #: The providers the session really uses (ORT drops those that fail to initialise).
        self.providers = list(self._sess.get_providers())
        accel = [p for p in self.requested_providers if p != CPU]
        self.accelerated = bool(accel) and any(p in self.providers for p in accel)
        self.fallback_to_cpu = bool(accel) and not self.accelerated
        used = dict(zip(wanted, options))
        #: The precision the first provider in use computes float32 tensors in.
        self.precision = provider_precision(self.providers[0], used.get(self.providers[0], {}))
        if self.fallback_to_cpu and not allow_cpu_fallback:
            raise AcceleratorError(
                f"{Path(path).name}: the target asks for {accel} but this node's ONNX Runtime "
                f"offers {available}; install the runtime build for the accelerator, schedule "
                "on a node that has it, or allow CPU fallback in the target profile"
            )
        self.inputs = [self._spec(a) for a in self._sess.get_inputs()]
        self.outputs = [self._spec(a) for a in self._sess.get_outputs()]

    @staticmethod
    def _spec(arg: Any) -> TensorSpec:
        shape = tuple(
            None if i == 0 or not isinstance(d, int) or d < 0 else d
            for i, d in enumerate(arg.shape)
        )
        return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, "float32"))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [s.name for s in self.outputs]
        return dict(zip(names, self._sess.run(names, feeds)))

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "providers": self.providers,
            "requested_providers": self.requested_providers,
            "fallback_to_cpu": self.fallback_to_cpu,
        }
