"""A compiled pipeline and its run parameters, checked before any network (``kfedge submit``).

:func:`pipeline_path` finds a shipped pipeline's YAML (or takes a user's file),
:func:`load_pipeline_spec` reads its PipelineSpec, :func:`parse_params` reads ``KEY=VALUE``
command-line parameters, and :func:`prepare_params` checks them against the pipeline's root
``inputDefinitions`` and coerces them to the declared types. The target profile, the
techniques (``auto`` becomes the target's plan, so ``-p target=coral-edgetpu`` alone runs only
what an Edge TPU runs) and the goals are checked too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from kfedge.errors import ConfigError, NotFoundError

__all__ = [
    "BUILTIN_PIPELINES",
    "LIST_PARAMS",
    "load_pipeline_spec",
    "parse_params",
    "pipeline_path",
    "prepare_params",
]

#: The compiled pipelines kfedge ships (next to ``kfedge.pipelines``).
BUILTIN_PIPELINES = ("edge-optimize-deploy", "edge-optimize", "edge-evaluate", "edge-fleet")
#: Parameters that take a list; ``key=a,b`` becomes ``["a", "b"]``.
LIST_PARAMS = ("techniques", "model_uris", "targets")


def parse_params(items: list[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` command-line parameters.

    A value is parsed as JSON when it is valid JSON (numbers, lists, objects, ``true`` /
    ``false``), else kept as a string. For the list-typed parameters (:data:`LIST_PARAMS`) a
    plain string is a comma-separated list: ``techniques=ptq-int8,prune``.

    Args:
        items: The ``KEY=VALUE`` strings, in order.

    Returns:
        The parameters by name.

    Raises:
        ConfigError: An item without ``=``, with an empty key, or a key given twice.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"pipeline parameter {item!r} is not KEY=VALUE (e.g. -p target=cpu-arm64)"
            )
        if key in params:
            raise ConfigError(f"pipeline parameter {key!r} is given twice")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if key in LIST_PARAMS and isinstance(value, str):
            value = _split_list(value)
        params[key] = value
    return params


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def pipeline_path(pipeline: str | os.PathLike[str]) -> Path:
    """The compiled YAML of a shipped pipeline name, or a user's YAML file.

    Args:
        pipeline: One of :data:`BUILTIN_PIPELINES`, or a path to a compiled pipeline YAML.

    Returns:
        The path of the YAML file.

    Raises:
        NotFoundError: Neither a shipped pipeline name nor an existing file.
    """
    name = str(pipeline)
    if name in BUILTIN_PIPELINES:
        import kfedge.pipelines

        return Path(kfedge.pipelines.__file__).parent / f"{name}.yaml"
    path = Path(name).expanduser()
    if not path.is_file():
        raise NotFoundError(
            f"pipeline {name!r} is neither one of {', '.join(BUILTIN_PIPELINES)} "
            "nor an existing compiled pipeline YAML file"
        )
    return path


def load_pipeline_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the PipelineSpec document of a compiled pipeline YAML.

    Args:
        path: Compiled pipeline YAML (``kfp.compiler.Compiler().compile`` output; a second
            document with the platform spec, as kfp-kubernetes writes, is allowed).

    Returns:
        The PipelineSpec as a dict (``pipelineInfo``, ``root``, ...).

    Raises:
        ConfigError: Not YAML, or no document with ``pipelineInfo`` and ``root``.
    """
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read pipeline YAML {path}: {first}") from None
    for doc in docs:
        if isinstance(doc, dict) and "pipelineInfo" in doc and "root" in doc:
            if not doc["pipelineInfo"].get("name"):
                raise ConfigError(f"pipeline YAML {path} has no pipelineInfo.name")
            return doc
    raise ConfigError(
        f"{path} is not a compiled KFP pipeline: expected a YAML document with "
        "pipelineInfo and root (compile it with kfp.compiler.Compiler)"
    )


def _inputs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    root = spec.get("root") or {}
    return dict(((root.get("inputDefinitions") or {}).get("parameters")) or {})


def _coerce(name: str, value: Any, decl: dict[str, Any], pipeline: str) -> Any:
    """A parameter value in the type the pipeline declares, or a ConfigError."""
    kind = decl.get("parameterType", "STRING")
    bad = ConfigError(
        f"parameter {name!r} of pipeline {pipeline} is {kind}; got {value!r} "
        f"({type(value).__name__})"
    )
    if value is None:
        raise ConfigError(
            f"parameter {name!r} of pipeline {pipeline} is {kind}; got null "
            "(leave the parameter out to use its default)"
        )
    if kind == "STRING":
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "NUMBER_INTEGER":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        if isinstance(value, int):
            return value
        raise bad
    if kind == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if kind == "BOOLEAN":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "LIST":
        if isinstance(value, str):
            return _split_list(value)
        if not isinstance(value, list | tuple):
            raise bad
        return list(value)
    if kind == "STRUCT":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise bad from None
        if not isinstance(value, dict):
            raise bad
        return value
    return value


def _is_auto(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in ("", "auto")
    return isinstance(value, list | tuple) and list(value) in ([], ["auto"])


def prepare_params(spec: dict[str, Any], params: dict[str, Any] | None) -> dict[str, Any]:
    """Check and complete run parameters against a pipeline, before any network.

    Args:
        spec: The PipelineSpec (see :func:`load_pipeline_spec`).
        params: Parameters by name (values as :func:`parse_params` gives them, or Python
            values; ``goals_json`` may be a dict).

    Returns:
        The parameters to send, in the declared types. When ``target`` is given and
        ``techniques`` is absent or ``"auto"``, ``techniques`` is the target's plan without the
        FP32 reference (the pipeline exports that one separately); explicit techniques are
        checked against the target and sent without the FP32 reference too.

    Raises:
        ConfigError: Unknown parameter names (the message lists the accepted ones), values of
            the wrong type, missing required parameters, techniques the target does not run,
            or invalid goals.
        NotFoundError: Unknown target name or missing target file.
    """
    name = spec["pipelineInfo"]["name"]
    inputs = _inputs(spec)
    params = dict(params or {})
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        accepted = ", ".join(f"{k} ({v.get('parameterType', '?')})" for k, v in inputs.items())
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for pipeline {name}; "
            f"accepted: {accepted or 'none'}"
        )
    missing = [k for k, v in inputs.items() if not v.get("isOptional") and "defaultValue" not in v]
    missing = [k for k in missing if k not in params]
    if missing:
        raise ConfigError(f"pipeline {name} needs parameter(s) {', '.join(missing)}")

    target = None
    if "target" in inputs and (
        "target" in params or "techniques" in params or "goals_json" in params
    ):
        from kfedge.targets import load_target

        target_name = params.get("target", inputs["target"].get("defaultValue"))
        if target_name:
            target = load_target(str(target_name))
    if "techniques" in inputs and target is not None:
        from kfedge.provision import plan_techniques

        requested = params.get("techniques")
        if _is_auto(requested):
            if "target" in params or requested is not None:
                params["techniques"] = plan_techniques("auto", target)[1:]
        else:
            if isinstance(requested, str):
                requested = _split_list(requested)
            if not isinstance(requested, list | tuple) or not all(
                isinstance(t, str) for t in requested
            ):
                raise ConfigError(
                    f"techniques must be a list of technique names or 'auto'; got {requested!r}"
                )
            params["techniques"] = plan_techniques(list(requested), target)[1:]
    if "goals_json" in params:
        goals = params["goals_json"]
        if target is not None:
            from kfedge.provision import check_goals

            check_goals(goals, target)
        elif isinstance(goals, str):
            try:
                json.loads(goals)
            except ValueError as exc:
                raise ConfigError(f"goals_json must be a JSON object, got {goals!r}") from exc
        if isinstance(goals, dict):
            params["goals_json"] = json.dumps(goals)
    return {k: _coerce(k, v, inputs[k], name) for k, v in params.items()}
