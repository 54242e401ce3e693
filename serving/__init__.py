"""kfedge's KServe model server for .tflite and .onnx candidates (no TensorFlow on this path).

Entry points:

* ``python -m kfedge.serving --model_name NAME --model_dir DIR --http_port PORT`` — the
  container command of the ``kfedge-edge`` ServingRuntime (KServe's standard arguments).
* :func:`serve` — ``serve(model_path_or_uri, name="model", port=8080, host="127.0.0.1")``, what
  ``kfedge serve`` calls.

Modules: ``model`` (the KServe model: request checks, runners), ``errors`` (the one kfedge error
-> HTTP status table, OIP error answers), ``binary`` (the binary tensor extension), ``dataplane``,
``limits`` (request-body limit), ``app`` (the ASGI app), ``grpc_server``, ``server`` (the
process). Why it is built this way: ``docs/ARCHITECTURE.md#serving``.

The names below are imported lazily, so ``import kfedge.serving`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BODY_BYTES",
    "EdgeModel",
    "EdgeServer",
    "build_app",
    "resolve_model",
    "serve",
]

_LAZY = {
    "DEFAULT_MAX_BATCH": "kfedge.serving.model",
    "EdgeModel": "kfedge.serving.model",
    "resolve_model": "kfedge.serving.model",
    "DEFAULT_MAX_BODY_BYTES": "kfedge.serving.limits",
    "EdgeServer": "kfedge.serving.server",
    "build_app": "kfedge.serving.app",
    "serve": "kfedge.serving.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kfedge.serving' has no attribute {name!r}")
