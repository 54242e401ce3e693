"""kfedge's KFP components: one per module, named after its function.

Thin by rule: each body is one call of a ``kfedge`` library entry, which also fills in the
artifacts' metadata (``docs/ARCHITECTURE.md#components``). The compiled YAML of each lies next
to its module (``kfedge compile``).
"""

from functools import partial

from kfp import dsl

from kfedge._version import COMPONENT_IMAGE

#: The decorator of every kfedge component: the component image, which already holds kfp.
component = partial(dsl.component, base_image=COMPONENT_IMAGE, install_kfp_package=False)
