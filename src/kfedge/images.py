"""kfedge's container images: which Dockerfile, which platforms, which reference.

The catalog is ``kfedge/data/images.yaml`` (the one place that says for which platforms each
image is built). :func:`image_catalog` reads it; :func:`image_for_ref` tells which catalog image
a reference (as it appears in compiled pipeline YAML or a runtime) is, whatever its registry;
:func:`buildx_commands` gives the ``docker buildx build`` command lines for a registry.

``python -m kfedge.images build --registry REGISTRY [--push] [--run]`` prints (or runs) them;
``make images REGISTRY=...`` calls it.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from kfedge.errors import ConfigError, NotFoundError

__all__ = [
    "ImageSpec",
    "buildx_commands",
    "image_catalog",
    "image_for_ref",
    "image_ref",
    "main",
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
    """

    name: str
    ref: str
    dockerfile: str
    platforms: tuple[str, ...]
    tensorflow: bool
    runs: str

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
            )
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
        cmd += ["-f", s.dockerfile, "-t", s.reference(registry)]
        if push:
            cmd.append("--push")
        cmd.append(".")
        out.append(cmd)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m kfedge.images build``: print or run the buildx command lines.

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
    build.add_argument("names", nargs="*", help="images to build (default: all)")
    args = parser.parse_args(argv)
    try:
        cmds = buildx_commands(args.registry or None, args.push, args.names or None)
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
