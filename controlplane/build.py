"""Build the control plane's upstream programs from the Go module proxy, once per machine.

Each program is built from a pinned build module under ``controlplane/go/<name>/`` (``go.mod``,
``go.sum``, and a ``tools.go`` naming the program's main package). The binaries and KServe's
own configuration (CRDs, the ``inferenceservice-config`` ConfigMap, the webhook
configurations, from the same module version as its controller) go to
``$KFEDGE_CLUSTER_CACHE`` (default ``~/.cache/kfedge``) ``/controlplane-<hash>/``, where the
hash covers every build module and the Go version: a changed pin rebuilds, anything else
reuses. Go's own caches (``GOMODCACHE``, ``GOCACHE``) make a rebuild after a small change fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GO_DIR = HERE / "go"
#: Bumped when the layout of the cache directory changes.
_LAYOUT = 1


@dataclass(frozen=True)
class Program:
    """One upstream program: its build module (``controlplane/go/<module>``) and main package."""

    name: str
    module: str
    package: str


PROGRAMS: tuple[Program, ...] = (
    Program("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
    Program("kube-apiserver", "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"),
    Program(
        "kube-controller-manager", "kubernetes", "k8s.io/kubernetes/cmd/kube-controller-manager"
    ),
    Program("kube-scheduler", "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler"),
    Program("kubectl", "kubernetes", "k8s.io/kubernetes/cmd/kubectl"),
    Program("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok"),
    Program("kserve-manager", "kserve", "github.com/kserve/kserve/cmd/manager"),
)
#: KServe's configuration, copied from its module at the controller's version (paths in it).
KSERVE_CONFIG = (
    "config/crd/full/serving.kserve.io_inferenceservices.yaml",
    "config/crd/full/serving.kserve.io_servingruntimes.yaml",
    "config/crd/full/serving.kserve.io_clusterservingruntimes.yaml",
    "config/crd/full/serving.kserve.io_trainedmodels.yaml",
    "config/crd/full/serving.kserve.io_inferencegraphs.yaml",
    "config/crd/full/clusterstoragecontainer/serving.kserve.io_clusterstoragecontainers.yaml",
    "config/configmap/inferenceservice.yaml",
    "config/webhook/manifests.yaml",
    "config/overlays/kubeflow/cluster-role.yaml",
)


def cache_parent() -> Path:
    """Where built control planes are kept (``$KFEDGE_CLUSTER_CACHE`` or ``~/.cache/kfedge``)."""
    return Path(os.environ.get("KFEDGE_CLUSTER_CACHE") or Path.home() / ".cache" / "kfedge")


def go_available() -> str | None:
    """None when ``go`` can build here, else why not."""
    if shutil.which("go") is None:
        return "the go command is not installed (Go builds the control plane from the module proxy)"
    return None


def _go_version() -> str:
    out = subprocess.run(["go", "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def build_key() -> str:
    """Hash of every build module and the Go version: the cache directory's name."""
    digest = hashlib.sha256(f"layout {_LAYOUT}\n{_go_version()}\n".encode())
    for path in sorted(GO_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(GO_DIR)).encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps([p.__dict__ for p in PROGRAMS] + list(KSERVE_CONFIG)).encode())
    return digest.hexdigest()[:12]


def _go(args: list[str], cwd: Path, what: str, timeout: float) -> str:
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{what} failed ({proc.returncode}): go {' '.join(args)}\n{tail}")
    return proc.stdout


def _build(dest: Path) -> dict[str, object]:
    (dest / "bin").mkdir(parents=True)
    seconds: dict[str, float] = {}
    for prog in PROGRAMS:
        started = time.perf_counter()
        _go(
            [
                "build",
                "-trimpath",
                "-ldflags=-s -w",
                "-o",
                str(dest / "bin" / prog.name),
                prog.package,
            ],
            GO_DIR / prog.module,
            f"building {prog.name}",
            timeout=3600,
        )
        if not os.access(dest / "bin" / prog.name, os.X_OK):  # go build wrote a package archive
            raise RuntimeError(f"{prog.package} is not a main package: no {prog.name} program")
        seconds[prog.name] = round(time.perf_counter() - started, 1)
    kserve_dir = Path(
        _go(
            ["list", "-m", "-f", "{{.Dir}}", "github.com/kserve/kserve"],
            GO_DIR / "kserve",
            "locating KServe's module",
            timeout=600,
        ).strip()
    )
    for rel in KSERVE_CONFIG:
        target = dest / "kserve" / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kserve_dir / rel, target)
    pins = {}
    for module in sorted({p.module for p in PROGRAMS}):
        for line in (GO_DIR / module / "go.mod").read_text().splitlines():
            if line.startswith("require ") and not line.endswith("("):
                pins[module] = line.split(maxsplit=1)[1]
    return {
        "go": _go_version(),
        "modules": pins,
        "build_s": seconds,
        "total_s": round(sum(seconds.values()), 1),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def ensure_built() -> Path:
    """The directory of the built control plane: built on first use (minutes), reused after.

    Returns:
        ``<cache>/controlplane-<hash>`` with ``bin/<program>``, ``kserve/*.yaml`` and
        ``manifest.json`` (per-program build seconds).

    Raises:
        RuntimeError: Go is missing or a build failed (with the build's output).
    """
    reason = go_available()
    if reason:
        raise RuntimeError(reason)
    parent = cache_parent()
    final = parent / f"controlplane-{build_key()}"
    if (final / "manifest.json").is_file():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    with open(parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "manifest.json").is_file():
            return final
        tmp = parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            manifest = _build(tmp)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
