"""Load and save Keras models (tf_keras) and SavedModels; export Keras 3 models to a SavedModel.

TensorFlow Model Optimization works only on tf_keras models. A Keras 3 ``.keras`` / ``.h5``
file is taken as it is by the post-training paths (TFLite, ONNX), through a SavedModel export;
the fine-tuning techniques rebuild it in tf_keras first (:mod:`kfedge.keras_bridge`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format
from kfedge.fsutil import atomic_path
from kfedge.keras3_config import NO_FINE_TUNE, source_keras_version


def keras_file_version(path: str | Path) -> str:
    """Keras version that wrote a ``.keras`` / ``.h5`` model ("" when it does not say)."""
    try:
        return source_keras_version(path)
    except ModelFormatError:
        return ""


def is_keras3_file(path: str | Path) -> bool:
    """Whether ``path`` is a ``.keras`` or ``.h5`` model written by Keras 3 (not tf_keras)."""
    return detect_format(path) in ("keras", "h5") and keras_file_version(path).startswith("3")


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
    if is_keras3_file(path):
        raise ModelFormatError(
            f"{path} was saved by Keras 3 ({keras_file_version(path)}); this loader reads "
            "tf_keras (Keras 2) models: kfedge's pruning, clustering and QAT rebuild a Keras 3 "
            "model in tf_keras themselves (kfedge.keras_bridge.to_tf_keras) and "
            f"{NO_FINE_TUNE}"
        )
    if fmt == "savedmodel" and not is_keras_savedmodel(path):
        raise ModelFormatError(
            f"{path} is a SavedModel without Keras metadata (e.g. Keras 3 model.export()): it "
            "holds traced functions, not layers, so pruning, clustering and QAT cannot start "
            f"from it (pass the .keras / .h5 file); {NO_FINE_TUNE}"
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
        if is_keras3_file(path):
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
        return None  # a Keras 3 file is not loaded with tf_keras
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
