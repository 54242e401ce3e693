"""Every version shim and lazy import of a heavy framework lives here.

* TensorFlow Model Optimization works only with tf_keras (Keras 2) models, so
  ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported.
* ``tf.lite.Interpreter`` is deprecated: TFLite models run with ``ai_edge_litert``.
* Missing optional dependencies raise :class:`~kfedge.errors.DependencyError` with the
  extra to install, never a bare ``ImportError`` from deep inside a step.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from kfedge.errors import DependencyError

_EXTRA_FOR = {
    "tensorflow": "optimize",
    "tf_keras": "optimize",
    "tensorflow_model_optimization": "optimize",
    "tf2onnx": "optimize",
    "onnx": "optimize",
    "sklearn": "optimize",
    "onnxruntime": "serving-onnx",
    "openvino": "serving-openvino",
    "nncf": "optimize",
    "ai_edge_litert": "serving-litert",
    "kserve": "serving",
    "kfp": "pipelines",
    "minio": "core",
}


#: The Python module of the runtime that serves each deployable format.
RUNTIME_MODULE = {"tflite": "ai_edge_litert", "onnx": "onnxruntime", "openvino": "openvino"}


def _image_hint(top: str) -> str:
    """Which kfedge serving image has a serving runtime ("" for another module).

    A one-runtime image lacks the others: the model belongs in the image of its format.
    """
    fmt = next((f for f, m in RUNTIME_MODULE.items() if m == top), None)
    if fmt is None:
        return ""
    from kfedge.images import image_ref, serving_image_for

    return (
        f"; in a container, serve {fmt} models with {serving_image_for(fmt).reference()} "
        f"(or {image_ref('serving')}, every runtime)"
    )


def _quiet_tf_env() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # tfmot needs Keras 2 (tf_keras); must be set before TensorFlow is imported.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a DependencyError naming the extra that provides it.

    Args:
        module: Dotted module name.

    Returns:
        The imported module.
    """
    top = module.split(".")[0]
    if top in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx"):
        _quiet_tf_env()
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_FOR.get(top, "all")
        hint = "pip install kfedge" if extra == "core" else f"pip install 'kfedge[{extra}]'"
        raise DependencyError(
            f"{module} is needed for this step but is not installed ({exc}); "
            f"install it with: {hint}{_image_hint(top)}"
        ) from exc


def tf() -> Any:
    """TensorFlow, imported with Keras 2 selected and its logging quieted."""
    mod = require("tensorflow")
    try:
        mod.get_logger().setLevel("ERROR")
    except Exception:  # pragma: no cover - logging is best effort
        pass
    return mod


def keras() -> Any:
    """The tf_keras package (Keras 2), the only Keras tfmot supports."""
    tf()
    return require("tf_keras")


def tfmot() -> Any:
    """tensorflow_model_optimization, imported after the Keras 2 switch."""
    tf()
    return require("tensorflow_model_optimization")


def tf2onnx() -> Any:
    """tf2onnx, imported after TensorFlow."""
    tf()
    return require("tf2onnx")


def onnx() -> Any:
    """The onnx package."""
    return require("onnx")


def onnxruntime() -> Any:
    """ONNX Runtime."""
    return require("onnxruntime")


def litert_interpreter_class() -> Any:
    """The LiteRT ``Interpreter`` class (``ai_edge_litert.interpreter.Interpreter``)."""
    return require("ai_edge_litert.interpreter").Interpreter


def litert_load_delegate(library: str, options: dict[str, str] | None = None) -> Any:
    """Load an external TFLite delegate (e.g. ``libedgetpu.so.1``) through LiteRT."""
    return require("ai_edge_litert.interpreter").load_delegate(library, options or {})


def openvino() -> Any:
    """OpenVINO Runtime (``openvino``): IR / ONNX models on CPU, GPU or NPU devices."""
    return require("openvino")
