"""The arm64 userland's wheel list: what the serving extras need, never kfedge itself.

Runs without qemu: it reads pyproject, the lock and this venv's metadata only. (A fresh
clone's CI once failed because ``serving = ["kfedge[serving-litert,...]"]`` put
``kfedge==0.1.0`` into the pip download of aarch64 wheels.)
"""

from __future__ import annotations

from benchmarks import emulation


def test_own_extras_are_expanded_not_downloaded():
    reqs = emulation.runtime_requirements()
    assert not any(r.lower().startswith("kfedge") for r in reqs), reqs
    wheels = emulation.wheel_list()
    assert "kfedge" not in wheels
    # every runtime of the serving extra, and the server, are in the userland
    for name in ("ai-edge-litert", "onnxruntime", "openvino", "kserve"):
        assert name in wheels, sorted(wheels)
