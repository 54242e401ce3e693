"""The one version of kfedge; image tags derive from it."""

__version__ = "0.1.0"

#: Registry prefix for kfedge images; override at build time, never per component.
IMAGE_REGISTRY = "ghcr.io/kfedge"

#: Image that runs the components (TensorFlow stack). Tag derives from the package version.
COMPONENT_IMAGE = f"{IMAGE_REGISTRY}/kfedge:{__version__}"

#: Slim serving image (no TensorFlow), multi-arch amd64 + arm64.
SERVING_IMAGE = f"{IMAGE_REGISTRY}/kfedge-serving:{__version__}"
