"""Slim a serving image's venv, then check it holds what its formats need and nothing else.

Run by ``images/Dockerfile.serving`` in its build stage (the image ships none of this):

- ``python slim.py trim VENV``: removes from the venv what nothing imports when serving: the
  packages' own test suites (``*/tests``; pandas' alone is 39 MB), pip, setuptools and wheel
  (the image installs nothing at run time), and :data:`UNUSED`. Prints the megabytes removed.
  The ``check`` that follows imports the server, so a removal that breaks it fails the build.
- ``python slim.py check FORMAT [FORMAT ...] [--kfp]``: imports the server (and kfp's executor
  with ``--kfp``) and each format's runtime; fails when TensorFlow or the runtime of a format
  the image does not serve is installed ("no image carries what its runtime does not use").
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

#: Installed as a dependency, imported by nothing that serves: pillow (23 MB) is declared by
#: kserve 0.21, whose sources import neither PIL nor pillow (grep of the wheel).
UNUSED = ("pillow",)
#: Never in a serving image.
FORBIDDEN = ("tensorflow", "tf_keras", "keras", "torch", "jax")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def trim(venv: Path) -> int:
    """Remove test suites and the packaging tools from ``venv``; return the bytes removed."""
    (site,) = venv.glob("lib/python3*/site-packages")
    before = _size(venv)
    for tests in sorted(site.glob("*/**/tests"), key=lambda p: len(p.parts)):
        if tests.is_dir() and (tests.parent / "__init__.py").exists():
            shutil.rmtree(tests, ignore_errors=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q",
         *UNUSED, "pip", "setuptools", "wheel"],
        check=False,
    )  # fmt: skip
    return before - _size(venv)


def check(formats: list[str], kfp: bool) -> None:
    """Import the server and the runtimes of ``formats``; fail on anything the image must lack."""
    from kfedge.compat import RUNTIME_MODULE

    unknown = sorted(set(formats) - set(RUNTIME_MODULE))
    if unknown:
        raise SystemExit(f"unknown formats {unknown}; known: {sorted(RUNTIME_MODULE)}")
    importlib.import_module("kfedge.serving.server")
    importlib.import_module("kfedge.serving.model")
    if kfp:
        for module in ("kfp.dsl.executor_main", "kfedge.evaluate", "kfedge.sidebyside"):
            importlib.import_module(module)
    for fmt in formats:
        importlib.import_module(RUNTIME_MODULE[fmt])
    extra = [m for f, m in RUNTIME_MODULE.items() if f not in formats]
    present = [m for m in (*FORBIDDEN, *extra, "PIL", "pip") if importlib.util.find_spec(m)]
    if present:
        raise SystemExit(f"the image for {formats} must not carry {present}")
    if "tensorflow" in sys.modules:
        raise SystemExit("TensorFlow leaked into the serving image")
    print(f"serves {', '.join(formats)}; holds none of {', '.join((*FORBIDDEN, *extra))}")


def main() -> None:
    """``trim VENV`` or ``check FORMAT ... [--kfp]``."""
    parser = argparse.ArgumentParser(prog="slim.py")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trim")
    t.add_argument("venv", type=Path)
    c = sub.add_parser("check")
    c.add_argument("formats", nargs="+")
    c.add_argument("--kfp", action="store_true")
    args = parser.parse_args()
    if args.command == "trim":
        print(f"trimmed {trim(args.venv) / 1e6:.0f} MB from {args.venv}")
    else:
        check(args.formats, args.kfp)


if __name__ == "__main__":
    main()
