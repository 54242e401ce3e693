"""Optimization techniques: a registry of one module per technique behind one contract.

Each technique module has ``NAME``, ``DESCRIPTION``, ``NEEDS_DATA``, a pydantic ``Config``
(``extra="forbid"``), ``check(source, data, config)`` (cheap: refuses bad input before any
heavy work) and ``apply(model_path, data, config, out_dir) -> Candidate``.

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
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from kfedge.candidate import Candidate
from kfedge.errors import ConfigError
from kfedge.techniques import (
    cluster,
    cqat_int8,
    fp32_onnx,
    fp32_tflite,
    onnx_fp16,
    onnx_int8_dynamic,
    onnx_int8_static,
    pcqat_int8,
    pqat_int8,
    prune,
    prune_cluster_int8,
    ptq_dynamic,
    ptq_fp16,
    ptq_int8,
    qat_int8,
)
from kfedge.techniques._base import resolve_source, validate

_MODULES: tuple[ModuleType, ...] = (
    fp32_tflite,
    fp32_onnx,
    ptq_dynamic,
    ptq_fp16,
    ptq_int8,
    onnx_int8_static,
    onnx_int8_dynamic,
    onnx_fp16,
    qat_int8,
    prune,
    cluster,
    prune_cluster_int8,
    pqat_int8,
    cqat_int8,
    pcqat_int8,
)

#: Technique name -> technique module.
TECHNIQUES: dict[str, ModuleType] = {m.NAME: m for m in _MODULES}

__all__ = [
    "TECHNIQUES",
    "FAMILIES",
    "apply",
    "apply_family",
    "describe",
    "get_technique",
    "list_techniques",
    "parse_params",
    "validate_config",
]


def list_techniques() -> list[str]:
    """Names of every registered technique, in registry order."""
    return list(TECHNIQUES)


def get_technique(name: str) -> ModuleType:
    """The technique module called ``name``.

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
    return validate(get_technique(name).Config, params, name)


def describe() -> list[dict[str, Any]]:
    """Every technique with its description, data needs and parameter JSON schema."""
    return [
        {
            "name": m.NAME,
            "description": m.DESCRIPTION,
            "needs_data": m.NEEDS_DATA,
            "params": m.Config.model_json_schema(),
        }
        for m in _MODULES
    ]


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


def apply(
    name: str,
    model: str | Path,
    data: str | Path | None,
    params: dict[str, Any] | str | None,
    out_dir: str | Path,
) -> Candidate:
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
    technique = get_technique(name)
    cfg = validate(technique.Config, parse_params(params), name)
    return technique.apply(model, data, cfg, out_dir)


def check(
    name: str, model: str | Path, data: str | Path | None, params: dict[str, Any] | str | None
) -> None:
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
    cfg = validate(technique.Config, parse_params(params), name)
    technique.check(resolve_source(model), data, cfg)


#: The technique families the KFP family components expose: family -> mode -> technique.
FAMILIES: dict[str, dict[str, str]] = {
    "export_fp32": {"tflite": fp32_tflite.NAME, "onnx": fp32_onnx.NAME},
    "quantize": {m.NAME: m.NAME for m in (ptq_dynamic, ptq_fp16, ptq_int8, qat_int8)},
    "quantize_onnx": {m.NAME: m.NAME for m in (onnx_int8_static, onnx_int8_dynamic, onnx_fp16)},
    "prune": {prune.NAME: prune.NAME},
    "cluster": {cluster.NAME: cluster.NAME},
}


def apply_family(
    family: str,
    mode: str,
    model: str | Path,
    data: str | Path | None,
    params: dict[str, Any] | str | None,
    out_dir: str | Path,
    **typed: Any,
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
