"""Optimization techniques: one declaration per technique, found by walking this package.

Each technique is a :class:`~kfedge.techniques._declare.Technique` subclass that states its
name, parameters (a pydantic ``Config``, ``extra="forbid"``), the format and quantization mode
it produces, whether it fine-tunes, its KFP family and report group, and its transform. Every
public module of this package is imported on first use, and defining the class registers it:
adding a technique is adding one file (and its test).

Usage::

    from kfedge import techniques
    cand = techniques.apply("prune", "baseline.keras", "dataset/", {"target_sparsity": 0.5},
                            "out/prune-50")

``model`` may be a candidate directory written by an earlier step: techniques build on its
stripped Keras model (``keras/model.keras``), so ``prune`` then ``cluster`` then ``ptq-int8``
chains to the technique ``prune>cluster>ptq-int8``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kfedge.candidate import Candidate, artifact_parts
from kfedge.errors import ConfigError
from kfedge.failure import isolated
from kfedge.techniques._base import resolve_source
from kfedge.techniques._declare import REGISTRY, Technique, discover, register

discover(__path__, __name__)

#: A path argument, and technique parameters (a dict, a JSON object string, or None).
Src = str | Path
Params = dict[str, Any] | str | None

#: Technique name -> declaration, in listing order.
TECHNIQUES: dict[str, Technique] = REGISTRY

__all__ = [
    "TECHNIQUES",
    "FAMILIES",
    "candidate_name",
    "Technique",
    "apply",
    "apply_family",
    "check",
    "describe",
    "discover",
    "get_technique",
    "list_techniques",
    "optimize_into",
    "parse_params",
    "register",
    "report_group",
    "validate_config",
]


def list_techniques() -> list[str]:
    """Names of every registered technique, in listing order."""
    return list(TECHNIQUES)


def get_technique(name: str) -> Technique:
    """The declaration of the technique called ``name``.

    Raises:
        ConfigError: Unknown name (the message lists the known ones).
    """
    try:
        return TECHNIQUES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown technique {name!r}; expected one of: {', '.join(TECHNIQUES)}"
        ) from None


def validate_config(name: str, params: dict[str, Any] | None) -> BaseModel:
    """Validate ``params`` for technique ``name`` without doing any work.

    Args:
        name: Technique name.
        params: Parameters (None = defaults).

    Returns:
        The technique's validated pydantic config.

    Raises:
        ConfigError: Unknown technique, unknown parameter, or a value out of range.
    """
    return get_technique(name).validate(params)


def describe() -> list[dict[str, Any]]:
    """Every technique's declaration: description, data needs, output, family, group, schema."""
    return [t.describe() for t in TECHNIQUES.values()]


def parse_params(params: dict[str, Any] | str | None) -> dict[str, Any]:
    """Parameters as a dict: a dict as is, a JSON object string parsed, None / "" as {}."""
    if params is None or (isinstance(params, str) and not params.strip()):
        return {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"technique parameters must be a JSON object, got {params[:80]!r}: {exc}"
            ) from None
    if not isinstance(params, dict):
        raise ConfigError(
            f"technique parameters must be a JSON object (mapping), got {type(params).__name__}"
        )
    return params


def apply(name: str, model: Src, data: Src | None, params: Params, out_dir: Src) -> Candidate:
    """Validate, check the inputs, then run technique ``name`` and write its candidate.

    Args:
        name: Technique name (see :func:`list_techniques`).
        model: Candidate directory or model file.
        data: Split dataset directory (train / calibration / eval), or None for techniques
            that need no data.
        params: Technique parameters, a dict or a JSON object string (``name`` overrides the
            candidate name).
        out_dir: Candidate directory to write; on failure nothing is written there.

    Returns:
        The written candidate.

    Raises:
        ConfigError: Unknown technique, bad parameters, or missing data (before any work).
        ModelFormatError: A model the technique cannot take (before any work).
    """
    return get_technique(name).apply(model, data, parse_params(params), out_dir)


def check(name: str, model: Src, data: Src | None, params: Params) -> None:
    """Everything :func:`apply` checks before any work, without doing the work.

    Provision calls this for every planned technique, so a plan the model or data cannot
    satisfy (pruning a .tflite baseline, INT8 without calibration data) fails in the first
    step instead of half-way through the pipeline.

    Args:
        name: Technique name.
        model: Candidate directory or model file.
        data: Split dataset directory, or None.
        params: Technique parameters.

    Raises:
        ConfigError: Unknown technique, bad parameters, or missing data.
        ModelFormatError: A model the technique cannot take.
    """
    technique = get_technique(name)
    technique.check(resolve_source(model), data, technique.validate(parse_params(params)))


class _Families(Mapping[str, dict[str, str]]):
    """family -> mode -> technique, read from the declarations each time (a live view)."""

    def _table(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for t in TECHNIQUES.values():
            if t.family:
                out.setdefault(t.family, {})[t.family_mode or t.name] = t.name
        return out

    def __getitem__(self, family: str) -> dict[str, str]:
        return self._table()[family]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


#: The technique families the KFP family components expose: family -> mode -> technique.
FAMILIES: Mapping[str, dict[str, str]] = _Families()


def apply_family(
    family: str, mode: str, model: Src, data: Src | None, params: Params, out_dir: Src, **typed: Any
) -> Candidate:
    """Run the technique ``mode`` of ``family`` with typed parameters merged into ``params``.

    Args:
        family: One of :data:`FAMILIES` (the family component's name).
        mode: The family's mode (e.g. ``ptq-int8`` for ``quantize``, ``onnx`` for export_fp32).
        model: Candidate directory or model file.
        data: Split dataset directory, or None.
        params: More parameters (dict or JSON object string).
        out_dir: Candidate directory to write.
        **typed: The component's typed parameters (e.g. ``target_sparsity``).

    Returns:
        The written candidate.

    Raises:
        ConfigError: Unknown family or mode, or a parameter given both typed and in ``params``.
    """
    if family not in FAMILIES:
        raise ConfigError(f"unknown technique family {family!r}; expected one of {list(FAMILIES)}")
    modes = FAMILIES[family]
    if mode not in modes:
        raise ConfigError(f"{family}: unknown mode {mode!r}; expected one of {list(modes)}")
    merged = parse_params(params)
    both = sorted(set(merged) & set(typed))
    if both:
        raise ConfigError(
            f"{family}: {both} given both as a component input and in params_json; give each once"
        )
    return apply(modes[mode], model, data, {**merged, **typed}, out_dir)


def optimize_into(
    candidate: Any,
    technique: str,
    model: Any,
    data: Any,
    params: dict[str, Any] | str | None = None,
    *,
    family: str | None = None,
    **typed: Any,
) -> str:
    """The optimize components' body: run a technique into an output artifact.

    Args:
        candidate: The output artifact (``.path``, ``.metadata``) or candidate directory.
        technique: The technique name, or the family's mode when ``family`` is given.
        model: The input model artifact or path.
        data: The dataset artifact or path, or None.
        params: Parameters (dict or JSON object string).
        family: A family of :data:`FAMILIES` (``quantize``...): ``technique`` is its mode.
        **typed: The family component's typed parameters.

    Returns:
        The candidate's name; the artifact's metadata gets the candidate's.

    A technique that raises becomes a *failed candidate* (:mod:`kfedge.failure`: its one-line
    reason in ``FAILED.json`` and in the artifact's metadata) and the step ends cleanly, so one
    technique's failure never fails the pipeline's loop; the FP32 export (``export_fp32``, the
    baseline) and configuration errors (an unknown technique, bad parameters) still raise.
    """
    out, meta = artifact_parts(candidate)
    src = artifact_parts(model)[0]
    ds = None if data is None else artifact_parts(data)[0]

    def step() -> str:
        if family is None:
            cand = apply(technique, src, ds, params, out)
        else:
            cand = apply_family(family, technique, src, ds, params, out, **typed)
        if meta is not None:
            meta.update(cand.kfp_metadata())
        return cand.name

    if family == "export_fp32":
        return step()
    return isolated(step, candidate, _failed_name(technique, family, params), technique, "optimize")


def candidate_name(technique: str, params: Params = None) -> str:
    """The name the candidate of ``technique`` with ``params`` gets (``name``, else its own).

    Raises:
        ConfigError: An unknown technique or invalid parameters.
    """
    decl = get_technique(technique)
    cfg = decl.validate(parse_params(params))
    return cfg.name or decl.own_name(cfg)


def _failed_name(technique: str, family: str | None, params: Params) -> str:
    """The name a technique's candidate would have had (for its failure record)."""
    name = FAMILIES[family].get(technique, technique) if family in FAMILIES else technique
    try:
        return candidate_name(name, params)
    except Exception:  # noqa: BLE001 - bad parameters: the technique's own name will do
        return name


#: Name fragments that put a step no declaration knows into a report group (the rule the
#: report used before technique declarations existed; kept for imported / foreign chains).
_QAT_HINTS = ("qat",)
_PTQ_HINTS = ("ptq", "int8", "fp16", "float16", "dynamic", "quant")


def _step_group(step: str) -> str | None:
    declared = TECHNIQUES.get(step)
    if declared is not None:
        return declared.group
    s = step.lower()
    if any(h in s for h in _QAT_HINTS):
        return "QAT"
    return "PTQ" if any(h in s for h in _PTQ_HINTS) else None


def report_group(technique: str) -> str | None:
    """The report group of a technique chain as recorded in a candidate / evaluation.

    Args:
        technique: A technique name or chain (``prune>cluster>ptq-int8``), or ``baseline`` /
            ``imported`` / ``unknown``.

    Returns:
        ``QAT`` when a step is quantization-aware, else ``PTQ`` when a step quantizes after
        training, else None. Steps are read from their declarations; a step no declaration
        knows is judged by its name.
    """
    groups = {_step_group(s) for s in str(technique).split(">") if s}
    if "QAT" in groups:
        return "QAT"
    return "PTQ" if "PTQ" in groups else None
