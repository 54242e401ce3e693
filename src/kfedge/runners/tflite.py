"""TFLite models through LiteRT (integer IO quantized / dequantized here)."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import AcceleratorError, ModelFormatError
from kfedge.runners.base import Runner, TensorSpec


class TFLiteRunner(Runner):
    """TFLite flatbuffers through ``ai_edge_litert``.

    A LiteRT interpreter is not thread-safe: each invocation takes one interpreter from a pool
    of ``instances`` (one per concurrent worker; the threads are split between them) and gives
    it back afterwards. The model is held in memory, never mapped from the file. Integer
    inputs/outputs of full-integer models are (de)quantized with the tensors' parameters.

    Precision: float32 tensors are computed in float32. LiteRT's built-in XNNPACK delegate runs
    them in float16 only when built with ``XNNPACK_FORCE_PRECISION_FP16`` or when the model
    carries ``reduced_precision_support`` metadata, which kfedge's converters never write; the
    wheels' default build does neither, whatever the CPU (checked on x86 and emulated arm64 by
    the tests that compare runtimes).
    """

    #: The precision float32 tensors are computed in.
    precision = "f32"

    format = "tflite"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        instances: int = 1,
        delegate: str | None = None,
        allow_cpu_fallback: bool = True,
    ) -> None:
        super().__init__(path, threads)
        self.delegate = delegate
        self.delegate_error: str | None = None
        self._delegates: list[Any] = []
        if delegate:
            try:
                self._delegates = [compat.litert_load_delegate(delegate)]
            except (ValueError, OSError, RuntimeError) as exc:
                self.delegate_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if not allow_cpu_fallback:
                    raise AcceleratorError(
                        f"{Path(path).name}: the target asks for the TFLite delegate {delegate} "
                        f"but it cannot be loaded here ({self.delegate_error}); install it, "
                        "schedule on a node with the device, or allow CPU fallback in the "
                        "target profile"
                    ) from exc
        self.fallback_to_cpu = bool(delegate) and not self._delegates
        if instances < 1:
            raise ValueError(f"instances must be >= 1, got {instances}")
        # The model is read into memory: LiteRT would otherwise map the file, and a file
        # truncated or rewritten while serving kills the process (SIGBUS) or corrupts answers.
        try:
            self._content = Path(self.path).read_bytes()
        except OSError as exc:
            raise ModelFormatError(f"{path}: cannot read the TFLite model: {exc}") from exc
        self.instances = instances
        per = max(1, self.threads // instances)
        self._slots: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        first = None
        for _ in range(instances):
            slot = _Slot(self._new_interpreter(per, path))
            first = first or slot
            self._slots.put(slot)
        assert first is not None
        self._interp = first.interp  # metadata (signatures, details) comes from the first one
        self._in = first.inputs
        self._out = first.outputs
        self._names = self._signature_names()
        self.inputs = [self._spec(d) for d in self._in]
        self.outputs = [self._spec(d) for d in self._out]

    def _new_interpreter(self, threads: int, path: str | Path) -> Any:
        interp_cls = compat.litert_interpreter_class()
        try:
            interp = interp_cls(
                model_content=self._content,
                num_threads=threads,
                experimental_delegates=self._delegates or None,
            )
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"{path} is not a loadable TFLite model: {exc}") from exc
        return interp

    def _signature_names(self) -> dict[int, str]:
        """Tensor index -> its name in the model's only signature.

        That is "image" rather than "serving_default_image:0"; empty when the model has no
        single signature (then the tensor names are used).
        """
        try:
            sigs = self._interp.get_signature_list()
            if len(sigs) != 1:
                return {}
            runner = self._interp.get_signature_runner(next(iter(sigs)))
            details = {**runner.get_input_details(), **runner.get_output_details()}
        except (ValueError, RuntimeError, AttributeError):
            return {}
        names = {int(d["index"]): str(n) for n, d in details.items()}
        return names if len(set(names.values())) == len(names) else {}

    def _name(self, d: dict[str, Any]) -> str:
        return self._names.get(int(d["index"]), d["name"])

    @staticmethod
    def _quant(d: dict[str, Any]) -> tuple[float, int] | None:
        scale, zp = d.get("quantization", (0.0, 0))
        if np.dtype(d["dtype"]).kind in "iu" and scale:
            return float(scale), int(zp)
        return None

    def _spec(self, d: dict[str, Any]) -> TensorSpec:
        sig = d.get("shape_signature")
        shape = list(sig if sig is not None and len(sig) else d["shape"])
        shape = [None if i == 0 or s < 0 else int(s) for i, s in enumerate(shape)]
        dtype = "float32" if self._quant(d) else np.dtype(d["dtype"]).name
        return TensorSpec(self._name(d), tuple(shape), dtype)

    @property
    def raw_io(self) -> dict[str, Any]:
        """The model's own input/output dtypes and quantization parameters."""
        return {
            "inputs": [
                {"name": self._name(d), "dtype": np.dtype(d["dtype"]).name, "quant": self._quant(d)}
                for d in self._in
            ],
            "outputs": [
                {"name": self._name(d), "dtype": np.dtype(d["dtype"]).name, "quant": self._quant(d)}
                for d in self._out
            ],
        }

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0]
        slot = self._slots.get()  # blocks while every interpreter is busy
        try:
            slot.resize(n)
            interp = slot.interp
            for d in slot.inputs:
                x = feeds[self._name(d)]
                q = self._quant(d)
                if q is not None:
                    info = np.iinfo(d["dtype"])
                    x = np.clip(np.round(x / q[0] + q[1]), info.min, info.max)
                interp.set_tensor(d["index"], x.astype(d["dtype"], copy=False))
            interp.invoke()
            out: dict[str, np.ndarray] = {}
            for d in slot.outputs:
                y = interp.get_tensor(d["index"])
                q = self._quant(d)
                if q is not None:
                    y = (y.astype(np.float32) - q[1]) * q[0]
                out[self._name(d)] = np.array(y, copy=True)
        finally:
            self._slots.put(slot)
        return out

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            **super().describe(),
            "instances": self.instances,
            "delegate": self.delegate if self._delegates else None,
            "requested_delegate": self.delegate,
            "fallback_to_cpu": self.fallback_to_cpu,
        }


class _Slot:
    """One interpreter with the batch size its tensors are allocated for.

    The batch is marked unknown before a resize and set only after it succeeded, so a failed
    reallocation is retried by the next request instead of leaving a stale size behind.
    """

    def __init__(self, interp: Any) -> None:
        self.interp = interp
        self.inputs = interp.get_input_details()
        self.outputs = interp.get_output_details()
        shape = self.inputs[0]["shape"]
        self.batch = int(shape[0]) if len(shape) else 1

    def resize(self, n: int) -> None:
        if n == self.batch:
            return
        self.batch = -1
        for d in self.inputs:
            shape = list(d["shape"])
            shape[0] = n
            self.interp.resize_tensor_input(d["index"], shape, strict=False)
        self.interp.allocate_tensors()
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()
        self.batch = n
