"""Load and save Keras models (tf_keras) and SavedModels; accept Keras 3 through a SavedModel.

TensorFlow Model Optimization works only on tf_keras models. A Keras 3 ``.keras`` file is
accepted for the post-training paths (TFLite, ONNX) by exporting it to a SavedModel first;
tfmot techniques refuse it with a message that says what to do.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format
from kfedge.fsutil import atomic_path


def keras_file_version(path: str | Path) -> str:
    """Keras version that wrote a ``.keras`` archive ("" when it does not say)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if "metadata.json" in zf.namelist():
                return str(json.loads(zf.read("metadata.json")).get("keras_version", ""))
    except (zipfile.BadZipFile, json.JSONDecodeError):
        return ""
    return ""


def is_keras3_file(path: str | Path) -> bool:
    """Whether ``path`` is a ``.keras`` archive written by Keras 3."""
    return detect_format(path) == "keras" and keras_file_version(path).startswith("3")


def is_keras_savedmodel(path: str | Path) -> bool:
    """Whether a SavedModel directory was written by tf_keras (loadable as a Keras model)."""
    return (Path(path) / "keras_metadata.pb").is_file()


def load_keras(path: str | Path, custom_objects: dict[str, Any] | None = None) -> Any:
    """Load a tf_keras model from .keras, .h5 or a Keras SavedModel, without compiling.

    Args:
        path: Model path.
        custom_objects: Extra objects for deserialisation.

    Returns:
        A ``tf_keras.Model``.

    Raises:
        ModelFormatError: Not a tf_keras model (e.g. Keras 3 or a plain SavedModel), or corrupt.
    """
    fmt = detect_format(path)
    if fmt == "keras" and keras_file_version(path).startswith("3"):
        raise ModelFormatError(
            f"{path} was saved by Keras 3 ({keras_file_version(path)}); TensorFlow Model "
            "Optimization needs a tf_keras (Keras 2) model. Post-training quantization and ONNX "
            "export accept it as is; for pruning, clustering or QAT rebuild the model with "
            "tf_keras (import tf_keras as keras) or save it with TF_USE_LEGACY_KERAS=1"
        )
    if fmt == "savedmodel" and not is_keras_savedmodel(path):
        raise ModelFormatError(
            f"{path} is a SavedModel without Keras metadata; it can be quantized with TFLite or "
            "exported to ONNX, but pruning, clustering and QAT need a tf_keras model "
            "(.keras/.h5 saved with tf_keras)"
        )
    if fmt not in ("keras", "h5", "savedmodel"):
        raise ModelFormatError(f"{path} is a {fmt} model, not a Keras model")
    keras = compat.keras()
    try:
        with compat.tfmot().quantization.keras.quantize_scope():
            return keras.models.load_model(str(path), compile=False, custom_objects=custom_objects)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelFormatError(f"{path} could not be loaded as a tf_keras model: {exc}") from exc


def save_keras(model: Any, path: str | Path) -> Path:
    """Save a tf_keras model atomically; format by suffix (.keras, .h5; none: SavedModel)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix in (".h5", ".hdf5"):
            model.save(tmp, include_optimizer=False)
        else:
            model.save(tmp)
    return path


def export_savedmodel(path: str | Path, out_dir: str | Path) -> Path:
    """Export any Keras model (tf_keras or Keras 3) or reuse a SavedModel, for TFLite / tf2onnx.

    Args:
        path: .keras / .h5 / SavedModel.
        out_dir: Where to write the SavedModel directory (``<out_dir>/saved_model``).

    Returns:
        The SavedModel directory.
    """
    fmt = detect_format(path)
    if fmt == "savedmodel":
        return Path(path)
    dest = Path(out_dir) / "saved_model"
    with atomic_path(dest) as tmp:
        if fmt == "keras" and keras_file_version(path).startswith("3"):
            compat.tf()
            keras3 = compat.require("keras")
            try:
                model = keras3.saving.load_model(str(path), compile=False)
            except Exception as exc:
                raise ModelFormatError(f"{path} could not be loaded with Keras 3: {exc}") from exc
            model.export(str(tmp), verbose=False)
        else:
            tf = compat.tf()
            model = load_keras(path)
            specs = [
                tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=n)
                for t, n in zip(model.inputs, model.input_names)
            ]
            names = list(model.output_names)

            def serve(*xs: Any) -> dict[str, Any]:
                res = model(list(xs) if len(xs) > 1 else xs[0], training=False)
                res = res if isinstance(res, (list, tuple)) else [res]
                return dict(zip(names, res))

            fn = tf.function(serve).get_concrete_function(*specs)
            tf.saved_model.save(model, str(tmp), signatures=fn)
    return dest


def count_params(path: str | Path) -> int | None:
    """Parameter count of a Keras model file, or None for other formats."""
    if detect_format(path) not in ("keras", "h5") or is_keras3_file(path):
        return None
    return int(load_keras(path).count_params())


def epoch_progress(label: str) -> Any:
    """A tf_keras callback that prints one ``[kfedge]`` line per epoch (``kfedge run`` shows it).

    Args:
        label: What is training (e.g. ``prune`` or ``sample baseline``).

    Returns:
        The callback.
    """
    keras = compat.keras()

    class _EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            total = self.params.get("epochs", "?")
            shown = " ".join(
                f"{k}={v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy")
            )
            print(f"[kfedge] {label}: epoch {epoch + 1}/{total} {shown}", flush=True)

    return _EpochProgress()
