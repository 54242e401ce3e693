"""Compile every KFP component and pipeline of kfedge into the checked-in YAML.

Components are discovered in ``kfedge.components.*`` (every public component object) and
written as ``components/<function>.yaml``; pipelines in ``kfedge.pipelines.*`` as
``pipelines/<pipeline-name>.yaml``. ``kfedge compile --check`` (and the golden test) compare
the checked-in files with a fresh compile, ignoring volatile fields.

Every compile also checks each pipeline the way a KFP backend's driver resolves it
(:func:`kfedge.support.pipeline_problems`): a reference it could not resolve fails the compile,
one line per problem, and nothing is written.

``registry`` rewrites every kfedge image reference to another registry
(:func:`kfedge.images.image_ref`): ``kfedge compile --registry REG`` (``make compile
REGISTRY=REG``) writes such YAML into ``build/yaml/`` unless told where; the checked-in YAML
always names the default registry.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kfedge.errors import ConfigError

REGENERATE = "make compile   (or: kfedge compile)"
#: Where ``kfedge compile --registry`` writes when no output directory is given.
REGISTRY_OUTPUT_DIR = "build/yaml"
_VOLATILE = ("sdkVersion",)
_IMAGE_LINE = re.compile(
    r"^([ \t]*(?:-[ \t]+)?image:[ \t]*)(['\"]?)([^'\"\s]+)\2[ \t]*$", re.MULTILINE
)


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


def with_registry(text: str, registry: str) -> str:
    """Compiled YAML with every kfedge image reference moved to ``registry``.

    Args:
        text: Compiled component or pipeline YAML.
        registry: Registry prefix, e.g. ``registry.local:5000/team``.

    Returns:
        The text with each ``image:`` of a kfedge image (any registry) rewritten to
        :func:`kfedge.images.image_ref` for ``registry``; other images are left alone.
    """
    from kfedge.images import image_for_ref, image_ref

    def swap(m: re.Match[str]) -> str:
        spec = image_for_ref(m.group(3))
        if spec is None:
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{image_ref(spec.name, registry)}{m.group(2)}"

    return _IMAGE_LINE.sub(swap, text)


def backend_problems(path: Path, text: str) -> list[str]:
    """What a KFP backend's driver could not resolve in one compiled pipeline, one line each."""
    from kfedge.support import pipeline_problems

    docs = [d for d in yaml.safe_load_all(text) if d]
    return [f"{path.name}: {p}" for p in pipeline_problems(docs)]


def compile_all(
    check: bool = False, output_dir: str | Path | None = None, registry: str | None = None
) -> list[str]:
    """Compile every component and pipeline.

    Args:
        check: Compare with the checked-in YAML instead of writing it.
        output_dir: Write into this directory instead of next to the sources.
        registry: Rewrite every kfedge image to this registry (:func:`with_registry`); needs
            ``output_dir`` (the checked-in YAML names the default registry).

    Returns:
        With ``check``: the files that are stale or missing. Else: the files written.

    Raises:
        ConfigError: A compiled pipeline has references a KFP backend could not resolve (one
            line per problem; nothing is written), or ``registry`` without ``output_dir``.
    """
    from kfp import compiler

    if registry and check:
        raise ConfigError(
            "--registry and --check do not go together (the check is against "
            "the checked-in YAML, which names the default registry)"
        )
    if registry and not output_dir:
        raise ConfigError(f"--registry needs an output directory (e.g. {REGISTRY_OUTPUT_DIR})")
    comps, pipes = components(), pipelines()
    fresh: dict[Path, str] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for dest, obj in sorted({**comps, **pipes}.items(), key=lambda kv: str(kv[0])):
            out = Path(tmp) / dest.name
            compiler.Compiler().compile(obj, str(out))
            fresh[dest] = out.read_text()
            if dest in pipes:
                problems += backend_problems(dest, fresh[dest])
    if problems:
        raise ConfigError(
            "the compiled pipelines would fail on a KFP backend:\n" + "\n".join(problems)
        )
    result: list[str] = []
    for dest, text in fresh.items():
        if check:
            if not dest.is_file() or _normalise(dest.read_text()) != _normalise(text):
                result.append(str(dest))
            continue
        out = Path(output_dir) / dest.name if output_dir else dest
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(with_registry(text, registry) if registry else text)
        result.append(str(out))
    return result
