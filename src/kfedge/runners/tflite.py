"""TFLite models through LiteRT (integer IO quantized / dequantized here)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.runners.base import Runner, TensorSpec


class TFLiteRunner(Runner):
    """TFLite flatbuffers through ``ai_edge_litert``.

    The LiteRT interpreter is not thread-safe: every invocation holds a lock. Integer
    inputs/outputs of full-integer models are (de)quantized with the tensors' parameters.
    """

    format = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        interp_cls = compat.litert_interpreter_class()
        try:
            self._interp = interp_cls(model_path=self.path, num_threads=self.threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"{path} is not a loadable TFLite model: {exc}") from exc
        self._lock = threading.Lock()
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self._batch = int(self._in[0]["shape"][0]) if len(self._in[0]["shape"]) else 1
        self._names = self._signature_names()
        self.inputs = [self._spec(d) for d in self._in]
        self.outputs = [self._spec(d) for d in self._out]

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

    def _resize(self, n: int) -> None:
        if n == self._batch:
            return
        for d in self._in:
            shape = list(d["shape"])
            shape[0] = n
            self._interp.resize_tensor_input(d["index"], shape, strict=False)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self._batch = n

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0]
        with self._lock:
            self._resize(n)
            for d in self._in:
                x = feeds[self._name(d)]
                q = self._quant(d)
                if q is not None:
                    info = np.iinfo(d["dtype"])
                    x = np.clip(np.round(x / q[0] + q[1]), info.min, info.max)
                self._interp.set_tensor(d["index"], x.astype(d["dtype"], copy=False))
            self._interp.invoke()
            out: dict[str, np.ndarray] = {}
            for d in self._out:
                y = self._interp.get_tensor(d["index"])
                q = self._quant(d)
                if q is not None:
                    y = (y.astype(np.float32) - q[1]) * q[0]
                out[self._name(d)] = np.array(y, copy=True)
        return out
