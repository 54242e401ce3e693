"""Helpers for the tests that need the Docker engine and kfedge's images (``make images``).

``.ci/run`` sets ``KFEDGE_REQUIRE_DOCKER=1`` after starting dockerd and building the images:
there a missing engine or image fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kfedge.images import (
    BASE_LABEL,
    CONTEXT_LABEL,
    context_digest,
    docker_problem,
    image_catalog,
    image_present,
)

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = os.environ.get("KFEDGE_REQUIRE_DOCKER") == "1"

__all__ = ["REQUIRED", "require_image", "unavailable"]


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail where the engine is required."""
    if REQUIRED:
        pytest.fail(f"KFEDGE_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


def require_image(name: str) -> str:
    """The catalog image ``name``'s reference, present in the engine and built from this
    checkout's sources (and its build arguments); else skip, or fail where required."""
    spec = next(s for s in image_catalog() if s.name == name)
    ref = spec.reference()
    problem = docker_problem()
    if problem:
        unavailable(problem)
    labels = image_present(ref)
    if labels is None:
        unavailable(f"{ref} is not built (make images)")
    want = context_digest(ROOT, spec.dockerfile, labels.get(BASE_LABEL) or "", spec.build_args)
    if labels.get(CONTEXT_LABEL) != want:
        unavailable(f"{ref} was built from other sources (make images rebuilds it)")
    return ref
