"""Keras / SavedModel models through TensorFlow (a compiled tf.function)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format
from kfedge.runners.base import Runner, TensorSpec

#: oneDNN's float math mode (``ONEDNN_DEFAULT_FPMATH_MODE``) -> the precision it computes in.
_FPMATH = {"STRICT": "f32", "BF16": "bf16", "F16": "f16", "TF32": "tf32", "ANY": "any"}


class TFRunner(Runner):
    """Keras (tf_keras) files and SavedModels through a compiled ``tf.function``.

    Precision: TensorFlow's oneDNN kernels compute float32 in float32 unless the environment
    sets ``ONEDNN_DEFAULT_FPMATH_MODE`` (then ``precision`` says what it allows).
    """

    def __init__(self, path: str | Path, threads: int | None = None, fmt: str = "") -> None:
        super().__init__(path, threads)
        mode = os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT").strip().upper()
        self.precision = _FPMATH.get(mode, mode.lower())
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
