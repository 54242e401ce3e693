"""One inference interface for every format: TF (Keras / SavedModel), TFLite (LiteRT), ONNX Runtime.

Evaluation and serving use the same runners, so the latency in the report is the latency served.
Callers always hand float (or the model's own) arrays: a TFLite model with integer input/output
(full-integer quantization) is quantized and dequantized here with the tensor's own parameters.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import InvalidInputError, ModelFormatError
from kfedge.formats import detect_format

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


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` for a dynamic dimension) and numpy dtype name of a tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; dynamic dimensions become -1."""
        return {
            "name": self.name,
            "shape": [-1 if d is None else int(d) for d in self.shape],
            "dtype": self.dtype,
        }


def _default_threads() -> int:
    env = os.environ.get("KFEDGE_THREADS")
    if env:
        return max(1, int(env))
    return max(1, os.cpu_count() or 1)


class Runner(ABC):
    """Runs one model on batches.

    Attributes:
        path: The model path.
        format: The model format (see :mod:`kfedge.formats`).
        inputs: What ``predict`` accepts (batch dimension first).
        outputs: What ``run`` returns.
        threads: Inference threads the runtime was given.
    """

    format: str = ""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = str(path)
        self.threads = threads or _default_threads()
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    # -- checking -------------------------------------------------------------------------------
    def check_input(self, name: str, value: Any) -> np.ndarray:
        """Check one input against its spec and return it as an array of the spec's dtype.

        Args:
            name: Input name.
            value: Array-like batch (batch dimension first).

        Returns:
            The array, cast to the input's dtype.

        Raises:
            InvalidInputError: Unknown input, wrong rank or shape, or non-numeric data.
        """
        spec = next((s for s in self.inputs if s.name == name), None)
        if spec is None:
            raise InvalidInputError(
                f"unknown input '{name}'; the model takes {[s.name for s in self.inputs]}"
            )
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"input '{name}' is not a rectangular array: {exc}") from exc
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"input '{name}' must be numeric ({spec.dtype}), got {arr.dtype} data"
            )
        want = spec.shape
        if arr.ndim != len(want) or any(
            w is not None and i > 0 and w != g for i, (w, g) in enumerate(zip(want, arr.shape))
        ):
            shown = [-1 if d is None else d for d in want]
            raise InvalidInputError(
                f"input '{name}' expects shape {shown} (batch first, -1 = any), got "
                f"{list(arr.shape)}"
            )
        if arr.shape and arr.shape[0] == 0:
            raise InvalidInputError(f"input '{name}' has an empty batch")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"input '{name}' contains NaN or infinite values")
        return arr.astype(spec.dtype, copy=False)

    def _feeds(self, batch: Any) -> dict[str, np.ndarray]:
        if isinstance(batch, dict):
            missing = [s.name for s in self.inputs if s.name not in batch]
            extra = [k for k in batch if k not in {s.name for s in self.inputs}]
            if missing or extra:
                raise InvalidInputError(
                    f"the model takes inputs {[s.name for s in self.inputs]}; "
                    f"missing {missing}, unexpected {extra}"
                )
            return {k: self.check_input(k, v) for k, v in batch.items()}
        if len(self.inputs) != 1:
            raise InvalidInputError(
                f"the model has {len(self.inputs)} inputs {[s.name for s in self.inputs]}; "
                "pass a dict of arrays"
            )
        return {self.inputs[0].name: self.check_input(self.inputs[0].name, batch)}

    # -- running --------------------------------------------------------------------------------
    def run(self, batch: Any) -> dict[str, np.ndarray]:
        """Run a batch and return every output by name.

        Args:
            batch: One array (single-input models) or a dict of arrays by input name.

        Returns:
            Output arrays by name (float for quantized outputs).
        """
        return self._run(self._feeds(batch))

    def predict(self, batch: Any) -> np.ndarray:
        """Run a batch and return the first output."""
        return self.run(batch)[self.outputs[0].name]

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]:
        """Format, threads and signatures as a JSON-friendly dict."""
        return {
            "format": self.format,
            "threads": self.threads,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release runtime resources."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
class OnnxRunner(Runner):
    """ONNX Runtime; providers chosen from what the target offers and this build has."""

    format = "onnx"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        spinning: bool = False,
    ) -> None:
        super().__init__(path, threads)
        ort = compat.onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Spinning worker threads distort side-by-side timing on small machines.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        available = ort.get_available_providers()
        wanted = [p for p in (providers or ["CPUExecutionProvider"]) if p in available]
        self.providers = wanted or ["CPUExecutionProvider"]
        try:
            self._sess = ort.InferenceSession(self.path, opts, providers=self.providers)
        except Exception as exc:  # ORT raises its own exception types
            raise ModelFormatError(f"{path} is not a loadable ONNX model: {exc}") from exc
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
        return {**super().describe(), "providers": self.providers}


# --------------------------------------------------------------------------------------------
class TFRunner(Runner):
    """Keras (tf_keras) files and SavedModels through a compiled ``tf.function``."""

    def __init__(self, path: str | Path, threads: int | None = None, fmt: str = "") -> None:
        super().__init__(path, threads)
        tf = compat.tf()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process; keep its pools
        self.format = fmt or detect_format(path)
        if self.format in ("keras", "h5"):
            from kfedge.models import load_keras

            model = load_keras(path)
            specs = [
                tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=n)
                for t, n in zip(model.inputs, model.input_names)
            ]
            self._fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0]))
            self._fn = self._fn.get_concrete_function(*specs)
            self.inputs = [
                TensorSpec(n, (None, *t.shape[1:]), t.dtype.name)
                for t, n in zip(model.inputs, model.input_names)
            ]
            self.outputs = [
                TensorSpec(n, (None, *t.shape[1:]), t.dtype.name)
                for t, n in zip(model.outputs, model.output_names)
            ]
            self._keras = True
        else:
            loaded = tf.saved_model.load(str(path))
            if "serving_default" not in loaded.signatures:
                raise ModelFormatError(f"SavedModel {path} has no 'serving_default' signature")
            self._fn = loaded.signatures["serving_default"]
            self._loaded = loaded  # keep variables alive
            _, kw = self._fn.structured_input_signature
            self.inputs = [
                TensorSpec(k, tuple(v.shape.as_list()), v.dtype.name) for k, v in kw.items()
            ]
            self.inputs = [TensorSpec(s.name, (None, *s.shape[1:]), s.dtype) for s in self.inputs]
            self.outputs = [
                TensorSpec(k, (None, *v.shape.as_list()[1:]), v.dtype.name)
                for k, v in self._fn.structured_outputs.items()
            ]
            self._keras = False

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._keras:
            args = [feeds[s.name] for s in self.inputs]
            res = self._fn(*args)
            res = res if isinstance(res, (list, tuple)) else [res]
            return {s.name: np.asarray(r) for s, r in zip(self.outputs, res)}
        res = self._fn(**feeds)
        return {k: np.asarray(v) for k, v in res.items()}


def load_runner(
    path: str | Path,
    threads: int | None = None,
    providers: list[str] | None = None,
    spinning: bool = False,
) -> Runner:
    """Open a model with the runner for its format.

    Args:
        path: A .tflite / .onnx / .keras / .h5 file or a SavedModel directory.
        threads: Inference threads (default: ``KFEDGE_THREADS`` or all cores).
        providers: ONNX Runtime execution providers in order of preference; those this
            build lacks are dropped, CPU is the fallback.
        spinning: Let ONNX Runtime worker threads spin between runs (faster in a
            dedicated process, distorting when several models are timed in turn).

    Returns:
        A ready :class:`Runner`.
    """
    fmt = detect_format(path)
    if fmt == "tflite":
        return TFLiteRunner(path, threads)
    if fmt == "onnx":
        return OnnxRunner(path, threads, providers, spinning)
    return TFRunner(path, threads, fmt)
