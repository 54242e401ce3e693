"""kfedge: take a trained model to an edge device on Kubeflow.

The library is plain Python: no kfp import at module level, and heavy frameworks
(TensorFlow, ONNX Runtime, LiteRT) are imported lazily through :mod:`kfedge.compat`.
"""

from kfedge._version import __version__
from kfedge.errors import KfedgeError

__all__ = ["KfedgeError", "__version__"]
