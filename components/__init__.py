"""kfedge's KFP components: one per module, named after its function.

Thin by rule: each body is one call of a ``kfedge`` library entry, which also fills in the
artifacts' metadata (``docs/ARCHITECTURE.md#components``). The compiled YAML of each lies next
to its module (``kfedge compile``).

Two images: the steps that run on the edge node (``evaluate``, ``benchmark``) use the slim
multi-arch serving image (LiteRT, ONNX Runtime, OpenVINO and kfp, no TensorFlow), so what they
measure is the serving runtime on the node's own architecture; every other step uses the
component image (the TensorFlow stack). Both images carry the ``kfp`` package the KFP
executor needs, so no component installs anything at run time.
"""

from functools import partial

from kfp import dsl

from kfedge._version import COMPONENT_IMAGE, SERVING_IMAGE

#: The decorator of the kfedge components: the component image, which already holds kfp.
component = partial(dsl.component, base_image=COMPONENT_IMAGE, install_kfp_package=False)
#: The decorator of the components that run on the edge node: the serving image (no
#: TensorFlow, built for every architecture a target can have), which also holds kfp.
edge_component = partial(dsl.component, base_image=SERVING_IMAGE, install_kfp_package=False)
