"""FP32 references: a model in a form the TensorFlow-free runtime on an edge node can run.

Evaluation and the side-by-side benchmark run on the target node in the slim serving image,
which has LiteRT, ONNX Runtime and OpenVINO but no TensorFlow. A Keras model or SavedModel is
therefore exported to an FP32 ``.tflite`` / ``.onnx`` first, on an ordinary node, and its
figures are that export's. :func:`export_fp32_into` is the ``export_fp32`` component's body.
"""

from __future__ import annotations

import shutil
from typing import Any

from kfedge.candidate import artifact_parts, load_candidate, model_path, save_candidate
from kfedge.errors import KfedgeError
from kfedge.failure import isolated, pass_on
from kfedge.formats import DEPLOYABLE, detect_format

__all__ = ["export_fp32_into"]


def _source_name(src: Any) -> str | None:
    try:
        return load_candidate(src).name
    except KfedgeError:
        return None


def export_fp32_into(
    candidate: Any,
    model: Any,
    model_format: str = "tflite",
    params_json: str = "{}",
    *,
    keep_deployable: bool = False,
    target: str = "",
) -> str:
    """Write the FP32 reference of ``model`` into ``candidate``.

    Args:
        candidate: The output artifact (``.path``, ``.metadata``) or candidate directory.
        model: The input model artifact or path (a candidate directory or a model file).
        model_format: ``tflite`` or ``onnx``: the format of the export.
        params_json: Export parameters as a JSON object (onnx: opset).
        keep_deployable: A model that the edge runtime already runs (.tflite, .onnx,
            OpenVINO IR) is kept as it is, under its own name; any other (Keras, SavedModel)
            is exported and keeps its own name too. Without it the model is always exported
            (a model already in that format is copied) and named as the export technique
            names it (``fp32-tflite`` for the provisioned baseline).
        target: Target profile name or YAML path: when given, the export is the target's FP32
            reference (its preferred format) and ``model_format`` is not used.

    Returns:
        The candidate's name; the artifact's metadata gets the candidate's. With
        ``keep_deployable`` (a loop's step) a failed import is passed on and a failed export
        recorded as a failed candidate (:mod:`kfedge.failure`) instead of raised.
    """
    from kfedge.techniques import optimize_into

    src = artifact_parts(model)[0]
    if target:
        from kfedge.provision import baseline_technique
        from kfedge.targets import load_target

        fp32 = baseline_technique(list(load_target(target).formats))
        model_format = fp32.removeprefix("fp32-")
    if not keep_deployable:
        return optimize_into(
            candidate, model_format, model, None, params_json, family="export_fp32"
        )
    # a loop's step (edge-evaluate): a failed import is passed on, a failed export recorded
    passed = pass_on(src, candidate)
    if passed is not None:
        return passed
    return isolated(
        lambda: _keep_or_export(src, candidate, model_format, params_json),
        candidate,
        _source_name(src) or src.stem,
        f"export_fp32 {model_format}",
        "export",
    )


def _keep_or_export(src: Any, candidate: Any, model_format: str, params_json: str) -> str:
    """Keep a model the edge runs as it is, else export it, under its own name."""
    from kfedge.techniques import optimize_into

    out, meta = artifact_parts(candidate)
    name = _source_name(src)
    if detect_format(model_path(src)) in DEPLOYABLE:
        if src.is_dir():
            shutil.copytree(src, out, dirs_exist_ok=True)
        else:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / src.name)
        cand = load_candidate(out) if name else None
        if meta is not None and cand is not None:
            meta.update(cand.kfp_metadata())
        return name or src.stem
    exported = optimize_into(out, model_format, src, None, params_json, family="export_fp32")
    cand = load_candidate(out)
    if name and name != exported:
        cand.name = name
        cand.parent = None if cand.parent == name else cand.parent
        save_candidate(cand, out)
    if meta is not None:
        meta.update(cand.kfp_metadata())
    return cand.name
