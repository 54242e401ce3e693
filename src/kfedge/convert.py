"""Plain FP32 exports: TFLite (TFLite converter) and ONNX (tf2onnx), from Keras or SavedModel.

Optimizing techniques build on these. Keras 3 models go through a SavedModel export, which both
converters accept. Files are written atomically.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfedge import compat, fsutil
from kfedge.errors import ModelFormatError
from kfedge.formats import KERAS_FORMATS, detect_format
from kfedge.fsutil import write_atomic
from kfedge.models import export_savedmodel, is_keras3_file, load_keras

DEFAULT_OPSET = 17


def tflite_converter(model_path: str | Path, work_dir: str | Path) -> Any:
    """A ``tf.lite.TFLiteConverter`` for a tf_keras file, a Keras 3 file or a SavedModel.

    Args:
        model_path: .keras / .h5 / SavedModel directory.
        work_dir: Scratch directory (Keras 3 files are exported to a SavedModel there).

    Returns:
        The converter, not yet configured.
    """
    tf = compat.tf()
    fmt = detect_format(model_path)
    if fmt not in KERAS_FORMATS:
        raise ModelFormatError(
            f"TFLite conversion needs a Keras file or a SavedModel, but {model_path} is {fmt}"
        )
    if fmt == "savedmodel" or is_keras3_file(model_path):
        sm = export_savedmodel(model_path, work_dir)
        return tf.lite.TFLiteConverter.from_saved_model(str(sm))
    return tf.lite.TFLiteConverter.from_keras_model(load_keras(model_path))


def _run_converter(
    conv: Any, out_path: str | Path, configure: Callable[[Any], None] | None, what: str
) -> Path:
    if configure is not None:
        configure(conv)
    try:
        data = conv.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise ModelFormatError(f"TFLite conversion of {what} failed: {exc}") from exc
    return write_atomic(out_path, data)


def convert_tflite(
    model_path: str | Path,
    out_path: str | Path,
    configure: Callable[[Any], None] | None = None,
) -> Path:
    """Convert to a .tflite file; ``configure`` sets optimizations on the converter first.

    Args:
        model_path: .keras / .h5 / SavedModel.
        out_path: Destination .tflite.
        configure: Called with the converter before ``convert()``.

    Returns:
        The written path.
    """
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(
        dir=out_path.parent if out_path.parent.exists() else None
    ) as w:
        return _run_converter(tflite_converter(model_path, w), out_path, configure, str(model_path))


def convert_keras_tflite(
    model: Any, out_path: str | Path, configure: Callable[[Any], None] | None = None
) -> Path:
    """Convert a live tf_keras model (stripped, or trained with QAT wrappers) to a .tflite file.

    Args:
        model: The tf_keras model.
        out_path: Destination .tflite.
        configure: Called with the converter before ``convert()``.

    Returns:
        The written path.
    """
    conv = compat.tf().lite.TFLiteConverter.from_keras_model(model)
    return _run_converter(conv, out_path, configure, f"model {model.name}")


def convert_onnx(model_path: str | Path, out_path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Convert a Keras model or SavedModel to ONNX with tf2onnx (SavedModel path).

    ``tf2onnx.convert.from_keras`` fails on Keras 3 models, so every model goes through a
    SavedModel with a dynamic batch dimension.

    Args:
        model_path: .keras / .h5 / SavedModel.
        out_path: Destination .onnx.
        opset: ONNX opset (>= 17).

    Returns:
        The written path.
    """
    if opset < 13:
        raise ModelFormatError(f"ONNX opset must be >= 13 (17 recommended), got {opset}")
    fmt = detect_format(model_path)
    if fmt not in KERAS_FORMATS:
        raise ModelFormatError(
            f"ONNX conversion needs a Keras file or a SavedModel, but {model_path} is {fmt}"
        )
    tf2onnx = compat.tf2onnx()
    compat.require("tf2onnx.tf_loader")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as w, fsutil.atomic_path(out_path) as tmp:
        sm = export_savedmodel(model_path, w)
        try:
            graph_def, inputs, outputs, renames = tf2onnx.tf_loader.from_saved_model(
                str(sm),
                None,
                None,
                signatures=["serving_default"],
                return_tensors_to_rename=True,
            )
            tf2onnx.convert.from_graph_def(
                graph_def,
                input_names=inputs,
                output_names=outputs,
                opset=opset,
                tensors_to_rename=renames,
                output_path=str(tmp),
            )
        except Exception as exc:  # tf2onnx raises many types
            raise ModelFormatError(f"ONNX conversion of {model_path} failed: {exc}") from exc
    return out_path
