"""Compile every KFP component and pipeline of kfedge into the checked-in YAML.

Components are discovered in ``kfedge.components.*`` (every public component object) and
written as ``components/<function>.yaml``; pipelines in ``kfedge.pipelines.*`` as
``pipelines/<pipeline-name>.yaml``. ``kfedge compile --check`` (and the golden test) compare
the checked-in files with a fresh compile, ignoring volatile fields.
"""

from __future__ import annotations

import importlib
import pkgutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

REGENERATE = "make compile   (or: kfedge compile)"
_VOLATILE = ("sdkVersion",)


def _public_objects(package: str) -> list[tuple[Any, Any]]:
    from kfp.dsl import base_component

    pkg = importlib.import_module(package)
    found: list[tuple[Any, Any]] = []
    seen: set[int] = set()
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in ("compile",):
            continue
        mod = importlib.import_module(f"{package}.{info.name}")
        for attr in sorted(vars(mod)):
            obj = getattr(mod, attr)
            if attr.startswith("_") or id(obj) in seen:
                continue
            if isinstance(obj, base_component.BaseComponent):
                seen.add(id(obj))
                found.append((mod, obj))
    return found


def components() -> dict[str, Any]:
    """Every public component of kfedge.components, by output file name."""
    from kfp.dsl import graph_component

    out = {}
    for mod, obj in _public_objects("kfedge.components"):
        if isinstance(obj, graph_component.GraphComponent):
            continue
        fn = getattr(obj, "python_func", None)
        if fn is None or fn.__module__ != mod.__name__:
            continue  # imported from elsewhere
        out[Path(mod.__file__).parent / f"{fn.__name__}.yaml"] = obj
    return out


def pipelines() -> dict[str, Any]:
    """Every pipeline of kfedge.pipelines, by output file name."""
    from kfp.dsl import graph_component

    out = {}
    for mod, obj in _public_objects("kfedge.pipelines"):
        if isinstance(obj, graph_component.GraphComponent):
            out[Path(mod.__file__).parent / f"{obj.name}.yaml"] = obj
    return out


def _normalise(text: str) -> Any:
    docs = list(yaml.safe_load_all(text))

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _VOLATILE}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return [strip(d) for d in docs]


def compile_all(check: bool = False, output_dir: str | Path | None = None) -> list[str]:
    """Compile every component and pipeline.

    Args:
        check: Compare with the checked-in YAML instead of writing it.
        output_dir: Write into this directory instead of next to the sources.

    Returns:
        With ``check``: the files that are stale or missing. Else: the files written.
    """
    from kfp import compiler

    targets = {**components(), **pipelines()}
    result: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for dest, obj in sorted(targets.items(), key=lambda kv: str(kv[0])):
            fresh = Path(tmp) / dest.name
            compiler.Compiler().compile(obj, str(fresh))
            if check:
                if not dest.is_file() or _normalise(dest.read_text()) != _normalise(
                    fresh.read_text()
                ):
                    result.append(str(dest))
                continue
            out = Path(output_dir) / dest.name if output_dir else dest
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(fresh.read_text())
            result.append(str(out))
    return result
