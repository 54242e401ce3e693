"""kfedge's container images: which Dockerfile, which platforms, which reference.

The catalog is ``kfedge/data/images.yaml`` (the one place that says for which platforms each
image is built). :func:`image_catalog` reads it; :func:`image_for_ref` tells which catalog image
a reference (as it appears in compiled pipeline YAML or a runtime) is, whatever its registry;
:func:`buildx_commands` gives the ``docker buildx build`` command lines for a registry.

``python -m kfedge.images build --registry REGISTRY [--push] [--run]`` prints (or runs) them
(``make images REGISTRY=... PLATFORMS=...``, on a machine with buildx and a registry).

``python -m kfedge.images local`` (``make images``) builds them into the local engine where no
registry is reachable: a stand-in base made from Debian's packages (:func:`ensure_base`,
``mmdebstrap`` + ``docker import``), the legacy builder (``DOCKER_BUILDKIT=0``: BuildKit fetches
frontend images), the context the root ``.dockerignore`` allows, and each image tagged with the
reference the pipelines use. An image whose ``io.kfedge.context`` label equals the digest of the
context it would be built from is reused.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kfedge.errors import ConfigError, NotFoundError

__all__ = [
    "ImageSpec",
    "buildx_commands",
    "context_digest",
    "docker_problem",
    "ensure_base",
    "image_catalog",
    "image_for_ref",
    "image_present",
    "image_ref",
    "local_build",
    "main",
    "serving_image_for",
]

#: Platform names of the architectures a target profile can have (``Target.arch``).
ARCH_PLATFORM = {"amd64": "linux/amd64", "arm64": "linux/arm64"}


@dataclass(frozen=True)
class ImageSpec:
    """One kfedge image of the catalog.

    Attributes:
        name: Short name (``component``, ``serving``).
        ref: Reference template with ``{registry}`` and ``{version}``.
        dockerfile: Dockerfile path from the repository root.
        platforms: Platforms the image is built for (``linux/amd64``, ``linux/arm64``).
        tensorflow: Whether the image carries TensorFlow.
        runs: What runs in it (one line).
        formats: The model formats it serves (empty: it serves none).
        build_args: ``--build-arg`` values, as sorted (name, value) pairs (with ``FORMATS``,
            the formats, for an image that serves any).
    """

    name: str
    ref: str
    dockerfile: str
    platforms: tuple[str, ...]
    tensorflow: bool
    runs: str
    formats: tuple[str, ...] = ()
    build_args: tuple[tuple[str, str], ...] = ()

    def build_arg_flags(self) -> list[str]:
        """``--build-arg NAME=VALUE`` flags for a ``docker build`` of this image."""
        return [f for k, v in self.build_args for f in ("--build-arg", f"{k}={v}")]

    def reference(self, registry: str | None = None, version: str | None = None) -> str:
        """The image reference for a registry (default: kfedge's) and version (kfedge's)."""
        from kfedge._version import IMAGE_REGISTRY, __version__

        return self.ref.format(
            registry=(registry or IMAGE_REGISTRY).rstrip("/"), version=version or __version__
        )

    @property
    def repository(self) -> str:
        """The repository name after the registry (``kfedge-serving``)."""
        return self.ref.split("/", 1)[1].split(":", 1)[0]

    def builds_for(self, arch: str) -> bool:
        """Whether the image is built for a target architecture (``amd64`` / ``arm64``)."""
        return ARCH_PLATFORM.get(arch, f"linux/{arch}") in self.platforms


@functools.lru_cache(maxsize=1)
def image_catalog() -> tuple[ImageSpec, ...]:
    """The images of ``kfedge/data/images.yaml``.

    Returns:
        One :class:`ImageSpec` per image, in file order.

    Raises:
        ConfigError: The catalog is malformed (a packaging error).
    """
    text = resources.files("kfedge").joinpath("data", "images.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    out = []
    for entry in data.get("images") or []:
        try:
            spec = ImageSpec(
                name=str(entry["name"]),
                ref=str(entry["ref"]),
                dockerfile=str(entry["dockerfile"]),
                platforms=tuple(str(p) for p in entry["platforms"]),
                tensorflow=bool(entry["tensorflow"]),
                runs=str(entry.get("runs", "")),
                formats=tuple(str(f) for f in entry.get("formats") or ()),
                build_args=tuple(sorted((
                    {str(k): str(v) for k, v in (entry.get("build_args") or {}).items()}
                    # the Dockerfile checks the image serves these and carries no other runtime
                    | ({"FORMATS": " ".join(entry["formats"])} if entry.get("formats") else {})
                ).items())),
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"kfedge/data/images.yaml: bad entry {entry!r}: {exc}") from None
        if "{registry}/" not in spec.ref or ":{version}" not in spec.ref:
            raise ConfigError(f"image {spec.name}: ref must be '{{registry}}/NAME:{{version}}'")
        out.append(spec)
    if not out:
        raise ConfigError("kfedge/data/images.yaml lists no image")
    return tuple(out)


def image_ref(name: str, registry: str | None = None) -> str:
    """The reference of a catalog image by short name (``component`` / ``serving``).

    Args:
        name: The image's short name.
        registry: Registry prefix (default: ``kfedge._version.IMAGE_REGISTRY``).

    Returns:
        E.g. ``ghcr.io/kfedge/kfedge-serving:0.1.0``.

    Raises:
        NotFoundError: No such image.
    """
    for spec in image_catalog():
        if spec.name == name:
            return spec.reference(registry)
    names = ", ".join(s.name for s in image_catalog())
    raise NotFoundError(f"no kfedge image named {name!r}; known: {names}")


def serving_image_for(model_format: str) -> ImageSpec:
    """The smallest catalog image that serves a model format (the one-runtime image).

    Args:
        model_format: ``tflite``, ``onnx`` or ``openvino``.

    Returns:
        The serving image with the fewest formats among those serving ``model_format``.

    Raises:
        NotFoundError: No kfedge image serves the format.
    """
    specs = [s for s in image_catalog() if model_format in s.formats]
    if not specs:
        served = sorted({f for s in image_catalog() for f in s.formats})
        raise NotFoundError(f"no kfedge image serves {model_format!r} models; served: {served}")
    return min(specs, key=lambda s: len(s.formats))


def _split_ref(ref: str) -> tuple[str, str]:
    """``registry/path/repo:tag`` -> (``repo``, ``tag``); digest references keep no tag."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    repo, _, tag = last.partition(":")
    return repo, tag


def image_for_ref(ref: str) -> ImageSpec | None:
    """Which catalog image a reference is, whatever registry it was pushed to.

    Args:
        ref: An image reference, e.g. ``registry.local:5000/kfedge/kfedge:0.1.0``.

    Returns:
        The :class:`ImageSpec` whose repository name matches, or None for a foreign image
        (then nothing is known of its platforms).
    """
    repo, _ = _split_ref(ref)
    return next((s for s in image_catalog() if s.repository.rsplit("/", 1)[-1] == repo), None)


def buildx_commands(
    registry: str | None = None, push: bool = False, names: list[str] | None = None
) -> list[list[str]]:
    """``docker buildx build`` command lines for the catalog images.

    Args:
        registry: Registry prefix (default: kfedge's).
        push: Add ``--push`` (a multi-platform build cannot be loaded into a local engine).
        names: Only these images (default: all).

    Returns:
        One argv per image, to run from the repository root.

    Raises:
        NotFoundError: A name is not in the catalog.
    """
    specs = image_catalog()
    if names:
        known = {s.name for s in specs}
        unknown = sorted(set(names) - known)
        if unknown:
            raise NotFoundError(f"no kfedge image named {unknown}; known: {sorted(known)}")
        specs = tuple(s for s in specs if s.name in names)
    out = []
    for s in specs:
        cmd = ["docker", "buildx", "build", "--platform", ",".join(s.platforms)]
        cmd += [*s.build_arg_flags(), "-f", s.dockerfile, "-t", s.reference(registry)]
        if push:
            cmd.append("--push")
        cmd.append(".")
        out.append(cmd)
    return out


#: The local stand-in for ``python:3.11-slim-bookworm`` (Debian 12's own python3.11).
LOCAL_BASE = "kfedge-local/python:3.11-bookworm"
#: What the base holds: python (as ``python``), venv, a CA bundle, groupadd/useradd.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: The label that records which context an image was built from.
CONTEXT_LABEL = "io.kfedge.context"
#: The label that records the base image an image was built on.
BASE_LABEL = "io.kfedge.base"
#: The label that records the recipe the local base was made by.
RECIPE_LABEL = "io.kfedge.recipe"


def docker_problem(docker: str = "docker") -> str | None:
    """Why the Docker engine cannot be used, in one line with the fix; None when it can.

    Args:
        docker: The Docker CLI.

    Returns:
        None, or the problem (no CLI, daemon unreachable).
    """
    if shutil.which(docker) is None:
        return (
            f"no Docker CLI ({docker!r} not on PATH): install Docker (Debian: apt-get install "
            "docker.io) and start the daemon"
        )
    try:
        res = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the Docker daemon does not answer within 30 s (is it hung?): restart dockerd"
    if res.returncode != 0 or not res.stdout.strip():
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return (
            f"the Docker daemon at {where} is not reachable ({_last_line(res.stderr)}): start "
            "dockerd, or set DOCKER_HOST to the socket it listens on"
        )
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def image_present(ref: str, docker: str = "docker") -> dict[str, str] | None:
    """The labels of a local image, or None when the engine does not hold it."""
    res = subprocess.run(
        [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        return None
    import json

    return json.loads(res.stdout.strip() or "null") or {}


def context_patterns(root: Path) -> tuple[list[str], list[str]]:
    """The build context's allow-list and exclusions, read from the root ``.dockerignore``."""
    allow, deny = [], []
    for line in (root / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "**":
            continue
        (allow if line.startswith("!") else deny).append(line.lstrip("!").rstrip("/"))
    return allow, deny


def context_files(root: Path) -> list[Path]:
    """The files a build from ``root`` sends (the root ``.dockerignore`` decides), sorted."""
    allow, deny = context_patterns(root)
    out: set[Path] = set()
    for entry in allow:
        path = root / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out.update(files)

    def denied(p: Path) -> bool:
        rel = p.relative_to(root)
        return any(
            rel.match(pat.removeprefix("**/")) or pat.removeprefix("**/") in rel.parts
            for pat in deny
        )

    return sorted(p for p in out if not denied(p))


def context_digest(
    root: Path, dockerfile: str, base: str, build_args: tuple[tuple[str, str], ...] = ()
) -> str:
    """SHA-256 over the context files, the Dockerfile, the base image and the build arguments."""
    h = hashlib.sha256(f"base={base}\n".encode())
    for name, value in build_args:
        h.update(f"arg {name}={value}\n".encode())
    for path in [*context_files(root), root / dockerfile]:
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _ca_bundle() -> Path:
    """The CA bundle this machine's pip trusts (a proxy's CA included)."""
    for cand in (
        os.environ.get("PIP_CERT"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise ConfigError("no CA bundle found (set PIP_CERT to the bundle pip should trust)")


def ensure_base(docker: str = "docker", ref: str = LOCAL_BASE, force: bool = False) -> str:
    """Make the local base image from Debian's packages unless the engine has it.

    ``mmdebstrap --variant=minbase`` (about 30 s) with :data:`BASE_PACKAGES` and this machine's
    CA bundle (pip inside the build goes through the same proxy as pip here), then
    ``docker import``.

    Args:
        docker: The Docker CLI.
        ref: The tag of the base.
        force: Rebuild even when present.

    Returns:
        ``ref``.

    Raises:
        ConfigError: mmdebstrap is missing or fails.
    """
    if shutil.which("mmdebstrap") is None:
        if not force and image_present(ref, docker) is not None:
            return ref
        raise ConfigError(
            "mmdebstrap is needed to make the local base image (apt-get install mmdebstrap), or "
            "pass --base IMAGE with a Debian-12-like python3.11 image"
        )
    ca = _ca_bundle()
    merged_usr = Path("/usr/share/mmdebstrap/hooks/merged-usr")
    recipe = [
        "mmdebstrap", "--quiet", "--variant=minbase",
        "--include=" + ",".join(BASE_PACKAGES),
        # /usr merged by mmdebstrap's hook, not by the usrmerge package (which pulls in perl: 50 MB)
        *([f"--hook-dir={merged_usr}"] if merged_usr.is_dir() else []),
        # no documentation, manual pages or translations (about 50 MB); licences stay
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        f"--customize-hook=cp {shlex.quote(str(ca))} \"$1\"/etc/ssl/certs/ca-certificates.crt",
        "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
        DEBIAN_SUITE,
    ]  # fmt: skip
    # A base made by another recipe (or with another CA bundle) is made again.
    digest = hashlib.sha256("\0".join(recipe).encode() + ca.read_bytes()).hexdigest()
    present = image_present(ref, docker)
    if not force and present is not None and present.get(RECIPE_LABEL) == digest:
        return ref
    previous_id = _image_id(docker, ref) if present is not None else ""
    with tempfile.TemporaryDirectory(prefix="kfedge-base-") as tmp:
        tar = Path(tmp) / "base.tar"
        cmd = [*recipe, str(tar), DEBIAN_MIRROR]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise ConfigError(f"mmdebstrap failed: {_last_line(res.stderr)}")
        res = subprocess.run(
            [docker, "import", "--change", f"LABEL {RECIPE_LABEL}={digest}", str(tar), ref],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            raise ConfigError(f"docker import failed: {_last_line(res.stderr)}")
    if previous_id:  # kept while images built on it are; removed with the last of them
        _remove_untagged(docker, previous_id)
    return ref


def _image_id(docker: str, ref: str) -> str:
    return subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip


def _remove_untagged(docker: str, image_id: str) -> None:
    """Remove an image that lost its last tag (rebuilds would otherwise pile up GBs)."""
    tags = subprocess.run(
        [docker, "image", "inspect", "--format", "{{len .RepoTags}}", image_id],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    if tags == "0":
        subprocess.run([docker, "rmi", image_id], capture_output=True, check=False)


def local_build(
    root: Path,
    names: list[str] | None = None,
    base: str | None = None,
    docker: str = "docker",
    force: bool = False,
) -> list[dict[str, Any]]:
    """Build the catalog images into the local engine (no registry, legacy builder).

    Args:
        root: The repository root (the build context).
        names: Only these images (default: all).
        base: The base image (default: :func:`ensure_base`'s Debian stand-in).
        docker: The Docker CLI.
        force: Rebuild even when an image of the same context is present.

    Returns:
        One record per image: name, ref, built (False: reused), seconds, size_bytes.

    Raises:
        ConfigError: No engine, or a build failed (its last line).
        NotFoundError: A name is not in the catalog.
    """
    problem = docker_problem(docker)
    if problem:
        raise ConfigError(problem)
    specs = image_catalog()
    if names:
        unknown = sorted(set(names) - {s.name for s in specs})
        if unknown:
            raise NotFoundError(
                f"no kfedge image named {unknown}; known: {[s.name for s in specs]}"
            )
        specs = tuple(s for s in specs if s.name in names)
    base = base or ensure_base(docker)
    base_id = _image_id(docker, base)
    if not base_id:
        raise ConfigError(f"the base image {base} is not in the engine (docker pull or --base)")
    base_key = f"{base}@{base_id}"  # a remade base (same tag) rebuilds the images
    out = []
    for spec in specs:
        ref = spec.reference()
        digest = context_digest(root, spec.dockerfile, base_key, spec.build_args)
        labels = image_present(ref, docker)
        previous_id = _image_id(docker, ref) if labels is not None else ""
        started = time.perf_counter()
        built = force or labels is None or labels.get(CONTEXT_LABEL) != digest
        if built:
            cmd = [
                docker, "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}",
                *spec.build_arg_flags(),
                "--label", f"{CONTEXT_LABEL}={digest}", "--label", f"{BASE_LABEL}={base_key}",
                "-f", spec.dockerfile, "-t", ref, ".",
            ]  # fmt: skip
            print(shlex.join(cmd), flush=True)
            env = {**os.environ, "DOCKER_BUILDKIT": "0"}
            res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                                 check=False)  # fmt: skip
            if res.returncode != 0:
                raise ConfigError(f"building {ref} failed: {_last_line(res.stdout + res.stderr)}")
            if labels is not None:  # the image this one replaces, now untagged: not kept
                _remove_untagged(docker, previous_id)
        size = subprocess.run(
            [docker, "image", "inspect", "--format", "{{.Size}}", ref],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        seconds = round(time.perf_counter() - started, 1)
        out.append(
            {"name": spec.name, "ref": ref, "built": built, "seconds": seconds,
             "size_bytes": int(size)}
        )  # fmt: skip
        print(f"{ref}: {'built' if built else 'reused'} ({int(size) / 1e6:.0f} MB)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m kfedge.images build`` / ``local``: buildx command lines, or a local build.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code (that of the first failing build with ``--run``).
    """
    parser = argparse.ArgumentParser(prog="python -m kfedge.images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="docker buildx command lines for kfedge's images")
    build.add_argument("--registry", default=None, help="registry prefix, e.g. ghcr.io/me")
    build.add_argument("--push", action="store_true", help="push (needed for multi-platform)")
    build.add_argument("--run", action="store_true", help="run the commands instead of printing")
    build.add_argument("--platforms", default=None, help="e.g. linux/amd64,linux/arm64")
    build.add_argument("names", nargs="*", help="images to build (default: all)")
    local = sub.add_parser("local", help="build into the local engine, no registry needed")
    local.add_argument("--base", default=None, help=f"base image (default: {LOCAL_BASE}, made)")
    local.add_argument("--force", action="store_true", help="rebuild images that are present")
    local.add_argument("names", nargs="*", help="images to build (default: all)")
    args = parser.parse_args(argv)
    if args.command == "local":
        root = Path(__file__).resolve().parents[2]
        if not (root / ".dockerignore").is_file():
            print(f"{parser.prog}: error: run from a kfedge source checkout", file=sys.stderr)
            return 2
        try:
            local_build(root, args.names or None, args.base, force=args.force)
        except (ConfigError, NotFoundError) as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        cmds = buildx_commands(args.registry or None, args.push, args.names or None)
        if args.platforms:
            for cmd in cmds:
                cmd[cmd.index("--platform") + 1] = args.platforms
    except NotFoundError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
        if args.run:
            rc = subprocess.run(cmd, check=False).returncode
            if rc:
                return rc
    return 0


def platforms_summary() -> dict[str, Any]:
    """``{reference: [platforms]}`` for the default registry (for docs and ``doctor``)."""
    return {s.reference(): list(s.platforms) for s in image_catalog()}


if __name__ == "__main__":  # pragma: no cover - thin CLI
    sys.exit(main())
