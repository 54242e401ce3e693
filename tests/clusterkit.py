"""The real control plane for the tests (``controlplane``): one per session, started on demand.

``.ci/run`` builds it (``make cluster-build``) and sets ``KFEDGE_REQUIRE_CLUSTER=1``: there a
missing build fails the tests instead of skipping them. Elsewhere the tests skip with the
reason unless the programs were built on this machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane import build
from controlplane.plane import ControlPlane

REQUIRED = os.environ.get("KFEDGE_REQUIRE_CLUSTER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"KFEDGE_REQUIRE_CLUSTER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running control plane (etcd, kube-apiserver, controller manager, scheduler, kwok,
    KServe's controller and webhooks) with the fake edge nodes; stopped after the session."""
    reason = build.go_available()
    if reason:
        _unavailable(reason)
    built = build.cache_parent() / f"controlplane-{build.build_key()}"
    if not REQUIRED and not (built / "manifest.json").is_file():
        _unavailable(f"the control plane is not built here ({built}: make cluster-build)")
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.start()
    print(f"control plane up in {plane.timings}")
    try:
        yield plane
    finally:
        plane.stop()


def logs(plane: ControlPlane) -> Path:
    """Where the programs' logs are (for failure messages)."""
    return plane.workdir / "logs"


def kubectl() -> str | None:
    """A kubectl to run: the one on PATH, else the control plane's when it is built here."""
    found = shutil.which("kubectl")
    if found:
        return found
    built = build.cache_parent() / f"controlplane-{build.build_key()}" / "bin" / "kubectl"
    return str(built) if built.is_file() else None
