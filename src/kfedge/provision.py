"""Provision: import and check the model and data, resolve the target, plan the techniques.

The first step of every pipeline. It brings the model and data from object storage (or the
built-in sample), checks that they fit each other, splits the data, and decides which
techniques the target can run (format and quantization mode) — before any heavy work.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from kfedge.candidate import artifact_parts
from kfedge.errors import ConfigError, DataError, ModelFormatError
from kfedge.formats import detect_format

#: Model URI that means "train the built-in sample baseline".
SAMPLE_MODEL_URI = "sample://baseline"

#: The default plan on a CPU target (what `make run` optimizes).
DEFAULT_TECHNIQUES = [
    "fp32-tflite",
    "ptq-dynamic",
    "ptq-fp16",
    "ptq-int8",
    "onnx-int8-static",
    "openvino-int8",
    "qat-int8",
    "prune",
    "cluster",
    "prune-cluster-int8",
]


def baseline_technique(target_formats: list[str]) -> str:
    """The FP32 export every candidate is compared with: the target's preferred format."""
    first = target_formats[0] if target_formats else "tflite"
    return {"onnx": "fp32-onnx", "openvino": "fp32-openvino"}.get(first, "fp32-tflite")


def _declaration(technique: str) -> Any:
    from kfedge.techniques import get_technique

    return get_technique(technique)


def plan_techniques(requested: list[str] | str | None, target: Any) -> list[str]:
    """Decide which techniques run for a target, from the techniques' declared outputs.

    Args:
        requested: Technique names, a comma-separated string, or ``None`` / ``"auto"`` for the
            default plan filtered to what the target runs.
        target: A :class:`kfedge.targets.Target`.

    Returns:
        The techniques, the FP32 baseline export first.

    Raises:
        ConfigError: An unknown technique, or one whose format / quantization mode the target
            does not run.
    """
    from kfedge.techniques import TECHNIQUES

    if isinstance(requested, str):
        requested = [t.strip() for t in requested.split(",") if t.strip()]
    auto = not requested or requested == ["auto"]
    names = list(TECHNIQUES) if auto else list(dict.fromkeys(requested or []))
    unknown = [t for t in names if t not in TECHNIQUES]
    if unknown:
        raise ConfigError(f"unknown technique(s) {unknown}; expected some of {sorted(TECHNIQUES)}")
    fits = [t for t in names if deployable(t, target)]
    if not auto:
        refused = [t for t in names if t not in fits]
        if refused:
            why = "; ".join(refusal(t, target) for t in refused)
            raise ConfigError(f"target {target.name} cannot run {refused}: {why}")
    elif not fits:
        raise ConfigError(f"no kfedge technique fits target {target.name}")
    if auto:
        fits = [t for t in DEFAULT_TECHNIQUES if t in fits] or fits
    # The FP32 export is always measured: every candidate is compared with it, even on targets
    # that do not deploy FP32 (selection then leaves it out, see ``deployable``).
    base = baseline_technique(list(target.formats))
    return [base] + [t for t in fits if t != base]


def deployable(technique: str, target: Any) -> bool:
    """Whether the target runs what ``technique`` produces (format, quantization mode, ISA)."""
    return refusal(technique, target) == ""


def refusal(technique: str, target: Any) -> str:
    """Why the target cannot run what ``technique`` produces ("" when it can)."""
    from kfedge.cpu import parse_isa, target_isa

    decl = _declaration(technique)
    fmt, mode = decl.output
    if fmt not in target.formats:
        unsupported = getattr(target, "unsupported_formats", {}) or {}
        because = f" ({unsupported[fmt]})" if fmt in unsupported else ""
        return f"{technique} writes {fmt}, the target runs {list(target.formats)}{because}"
    if mode not in target.quantization:
        return f"{technique} quantizes to {mode}, the target runs {list(target.quantization)}"
    if decl.needs_isa:
        need, have = parse_isa(decl.needs_isa), target_isa(target)
        if need.arch != have.arch or not need.extensions <= have.extensions:
            return (
                f"{technique} needs nodes with {need.name}; the profile states isa "
                f"{getattr(target, 'isa', None) or have.name} (state an isa with "
                f"{', '.join(sorted(need.extensions))} in the target profile when its nodes "
                "have it)"
            )
    return ""


def technique_params(
    technique: str, target: Any, epochs: int | None = None, calibration_samples: int | None = None
) -> dict[str, Any]:
    """Parameters a technique gets for a target, from its declaration.

    Fine-tuning techniques get ``epochs``; INT8 TFLite techniques integer IO when the target
    wants it (Edge TPU); calibrated INT8 techniques ``calibration_samples``; ONNX Runtime INT8
    techniques the target's instruction set (``isa``), which decides their weight range.
    """
    from kfedge.cpu import target_isa

    decl = _declaration(technique)
    fields = decl.Config.model_fields
    params: dict[str, Any] = {}
    if epochs is not None and epochs > 0 and decl.fine_tunes:
        params["epochs"] = int(epochs)
    int8 = decl.quant_mode == "int8"
    if int8 and decl.output_format == "tflite" and "io_dtype" in fields:
        if "uint8-io" in target.quantization:
            params["io_dtype"] = "uint8"
        elif "int8-full-integer-io" in target.quantization:
            params["io_dtype"] = "int8"
    if calibration_samples and int8 and decl.needs_data and "calibration_samples" in fields:
        params["calibration_samples"] = int(calibration_samples)
    if "isa" in fields:
        params["isa"] = target_isa(target).name
    return params


def resolve_model(
    model_uri: str, dataset_dir: Path | None, work_dir: Path, epochs: int = 30
) -> Path:
    """Bring the model to a local path (training the sample baseline for ``sample://baseline``)."""
    if model_uri == SAMPLE_MODEL_URI:
        if dataset_dir is None:
            raise ConfigError("the sample baseline needs the sample dataset to train on")
        from kfedge.sample import train_sample_baseline

        out = work_dir / "baseline.keras"
        train_sample_baseline(dataset_dir, out, epochs=epochs)
        return out
    from kfedge.storage import fetch

    return fetch(model_uri, work_dir)


def check_fine_tuning(model: Path, plan: list[str]) -> None:
    """Refuse, in one line and before any heavy work, a model the plan cannot fine-tune.

    A Keras 3 ``.keras`` / ``.h5`` model is rebuilt in tf_keras by the fine-tuning techniques;
    when the plan has any, its layers are checked now (config only, no TensorFlow for
    ``.keras``). A SavedModel without Keras metadata (Keras 3 ``model.export()``) cannot be
    rebuilt. A plan without fine-tuning techniques takes either as it is.

    Raises:
        ModelFormatError: Naming the layers the rebuild cannot map and the planned techniques.
    """
    from kfedge.keras3_config import check_fine_tunable

    tuned = [t for t in plan if _declaration(t).fine_tunes]
    if tuned:
        check_fine_tunable(model, tuned)


def model_io(path: Path, work_dir: Path | None = None) -> tuple[list[int], int]:
    """Per-sample input shape and number of classes of a classifier, from its runner.

    A Keras 3 ``.keras`` / ``.h5`` file is read through a SavedModel export in ``work_dir``
    (a temporary folder when None), the form the TFLite and ONNX exports start from too.
    """
    from kfedge.models import export_savedmodel, is_keras3_file
    from kfedge.runners import load_runner

    if is_keras3_file(path):
        if work_dir is None:
            with tempfile.TemporaryDirectory(prefix="kfedge-io-") as tmp:
                return model_io(export_savedmodel(path, tmp))
        path = export_savedmodel(path, work_dir)
    runner = load_runner(path, threads=1)
    if len(runner.inputs) != 1 or len(runner.outputs) < 1:
        raise ModelFormatError(
            f"{path}: expected an image classifier with one input, found inputs "
            f"{[s.name for s in runner.inputs]}"
        )
    shape = runner.inputs[0].shape[1:]
    out = runner.outputs[0].shape
    if any(d is None for d in shape) or len(out) != 2 or out[1] is None:
        raise ModelFormatError(
            f"{path}: expected a fixed input shape (N, H, W, C) and an output (N, classes); "
            f"found input {runner.inputs[0].to_dict()['shape']} and output "
            f"{[-1 if d is None else d for d in out]}"
        )
    runner.close()
    return [int(d) for d in shape], int(out[1])


def provision(
    model_uri: str,
    data_uri: str,
    target: str,
    model_out: str | Path,
    dataset_out: str | Path,
    techniques: list[str] | str | None = None,
    epochs: int | None = None,
    calibration_samples: int | None = None,
    baseline_epochs: int = 30,
    optimize: bool = True,
) -> dict[str, Any]:
    """Import and check model and data, resolve the target and plan the techniques.

    Args:
        model_uri: ``sample://baseline``, a local path, ``file://`` or ``s3://`` URI of a Keras
            file, SavedModel, TFLite or ONNX model.
        data_uri: ``sample://digits``, or a path / URI of an .npz, an image-folder tree or a split
            dataset.
        target: Target profile name or YAML path.
        model_out: Directory to write the baseline candidate to.
        dataset_out: Directory to write the split dataset to.
        techniques: Requested techniques, or None / "auto" for the target's default plan.
        epochs: Fine-tune epochs for training techniques (None: each technique's default).
        calibration_samples: Calibration samples for INT8 (None: default).
        baseline_epochs: Epochs to train the sample baseline.
        optimize: Plan and check techniques; False for evaluation-only pipelines, where the
            baseline may be any format (e.g. a .tflite no technique can start from).

    Returns:
        The runtime spec (JSON-friendly): target, techniques with their params, model facts.
    """
    from kfedge.candidate import Candidate, save_candidate
    from kfedge.data import SAMPLE_URI, prepare_dataset
    from kfedge.targets import load_target

    tgt = load_target(target)
    # refuses bad plans before any download or training
    plan = plan_techniques(techniques, tgt) if optimize else []
    requested = techniques.split(",") if isinstance(techniques, str) else list(techniques or [])
    if optimize and plan and plan[0] in [t.strip() for t in requested]:
        raise ConfigError(
            f"{plan[0]} is the FP32 reference every run exports for {tgt.name}; leave it out of "
            "techniques (a second copy would clash with it by name in the benchmark and selection)"
        )
    model_out, dataset_out = Path(model_out), Path(dataset_out)
    with tempfile.TemporaryDirectory(prefix="kfedge-provision-") as tmp:
        work = Path(tmp)
        if model_uri == SAMPLE_MODEL_URI:
            if data_uri not in (SAMPLE_URI, "sample"):
                raise ConfigError(
                    "the sample baseline (sample://baseline) trains on the built-in sample; "
                    f"pass --data sample://digits or your own model with {data_uri}"
                )
            info = prepare_dataset(SAMPLE_URI, work / "data", [32, 32, 1], 10)
            model_local = resolve_model(model_uri, work / "data", work, baseline_epochs)
        else:
            model_local = resolve_model(model_uri, None, work)
            fmt = detect_format(model_local)
            check_fine_tuning(model_local, plan)  # Keras 3: can the bridge rebuild it?
            shape, classes = model_io(model_local, work / "io")
            if data_uri in (SAMPLE_URI, "sample"):
                data_local: str | Path = SAMPLE_URI
            else:
                from kfedge.storage import fetch

                data_local = fetch(data_uri, work / "data_src")
            info = prepare_dataset(data_local, work / "data", shape, classes)
            if info.num_classes > classes:
                raise DataError(
                    f"{data_uri} has {info.num_classes} classes but the model outputs {classes}"
                )
        fmt = detect_format(model_local)
        # every planned technique checks the model and data now, before any heavy work
        from kfedge.techniques import check as check_technique

        for t in plan:
            check_technique(
                t, model_local, work / "data", technique_params(t, tgt, epochs, calibration_samples)
            )
        model_out.mkdir(parents=True, exist_ok=True)
        dest_name = (
            "saved_model" if fmt == "savedmodel" else f"model.{'keras' if fmt == 'keras' else fmt}"
        )
        if model_local.is_dir():
            shutil.copytree(model_local, model_out / dest_name, dirs_exist_ok=True)
        else:
            shutil.copy2(model_local, model_out / dest_name)
        save_candidate(
            Candidate(
                name="baseline",
                technique="baseline",
                format=fmt,
                model_file=dest_name,
                params={"source": model_uri},
            ),
            model_out,
        )
        dataset_out.mkdir(parents=True, exist_ok=True)
        for f in (work / "data").iterdir():
            shutil.copy2(f, dataset_out / f.name)
    tolerations = tgt.k8s_tolerations()
    spec = {
        "target": tgt.name,
        "arch": tgt.arch,
        "model_uri": model_uri,
        "model_format": fmt,
        "data_uri": data_uri,
        "input_shape": info.input_shape,
        "num_classes": info.num_classes,
        "counts": info.counts,
        "techniques": plan,
        "params": {t: technique_params(t, tgt, epochs, calibration_samples) for t in plan},
        "baseline": baseline_technique(list(tgt.formats)),
        "baseline_format": _declaration(baseline_technique(list(tgt.formats))).output_format,
        "deployable": [t for t in plan if deployable(t, tgt)],
        "node_selector": tgt.k8s_node_selector(),
        "tolerations": tolerations,
        "accelerator": (
            {
                "resource": tgt.accelerator.resource,
                "count": tgt.accelerator.count,
                "type": tgt.accelerator.accelerator_type,
            }
            if tgt.accelerator
            else None
        ),
        "onnx_providers": list(tgt.onnx_providers),
        "threads": tgt.threads,
        "runtime_image": tgt.runtime_image,
    }
    json.dumps(spec)  # JSON-friendly by contract
    return spec


def check_goals(goals: str | dict[str, Any] | None, target: str | Any) -> dict[str, Any]:
    """Validate selection goals before any heavy work and fit them to the target.

    Args:
        goals: Goals as a JSON string or dict (fields of :class:`kfedge.select.Goals`, and
            ``targets``: per-target overrides, :func:`kfedge.select.goals_for_target`).
        target: Target name / path or a loaded Target.

    Returns:
        The target's goals as a dict; ``include_baseline`` is False when the target does not run the
        FP32 baseline, and ``formats`` defaults to the target's formats.
    """
    from kfedge.select import Goals, goals_for_target
    from kfedge.targets import load_target

    tgt = load_target(target) if isinstance(target, str) else target
    if isinstance(goals, str):
        try:
            goals = json.loads(goals) if goals.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"goals must be a JSON object, got {goals!r}: {exc}") from exc
    if not isinstance(goals, dict):
        raise ConfigError(f"goals must be a JSON object, got {type(goals).__name__}")
    out = goals_for_target(goals, tgt.name)  # a fleet's per-target overrides
    out.setdefault("formats", [f for f in tgt.formats])
    if not deployable(baseline_technique(list(tgt.formats)), tgt):
        out["include_baseline"] = False
    try:
        Goals(**out)
    except Exception as exc:  # pydantic.ValidationError -> one clear line
        raise ConfigError(f"invalid goals {goals}: {exc}".replace("\n", "; ")) from exc
    return out


def imported_name(uri: str) -> str:
    """A readable candidate name for an imported model.

    Its file name, with the folder in front when the file name says nothing
    (``v2-model.onnx``); the suffix keeps it apart from ``baseline``.
    """
    parts = [p for p in uri.rstrip("/").split("/") if p and not p.endswith(":")]
    last = parts[-1] if parts else "model"
    if Path(last).stem in ("model", "saved_model", "") and len(parts) > 1:
        return f"{parts[-2]}-{last}"
    return last


def import_candidate(uri: str, out_dir: str | Path) -> Any:
    """Fetch a model (or a kfedge candidate directory) and write it as a candidate directory.

    Args:
        uri: Path, file:// or s3:// URI.
        out_dir: Destination candidate directory.

    Returns:
        The :class:`~kfedge.candidate.Candidate`.
    """
    from kfedge.candidate import META_FILE, Candidate, load_candidate, model_path, save_candidate
    from kfedge.storage import fetch

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="kfedge-import-") as tmp:
        local = fetch(uri, tmp)
        if local.is_dir() and (local / META_FILE).is_file():
            shutil.copytree(local, out, dirs_exist_ok=True)
            return load_candidate(out)
        src = model_path(local)
        fmt = detect_format(src)
        name = "saved_model" if fmt == "savedmodel" else f"model.{fmt}"
        out.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, out / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, out / name)
        cand = Candidate(
            name=imported_name(uri),
            technique="imported",
            format=fmt,
            model_file=name,
            params={"source": uri},
        )
        save_candidate(cand, out)
        return cand


# -- component entries -----------------------------------------------------------------------
class ProvisionOutputs(NamedTuple):
    """The provision component's outputs (field names as in its NamedTuple)."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    accelerator_type: str
    accelerator_count: str
    plan: str
    baseline_format: str
    goals: str


def use_s3_endpoint(endpoint: str) -> None:
    """Point S3 access at ``endpoint`` for this process (``AWS_ENDPOINT_URL``); "" = leave it."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint


def provision_from_files(
    model_uri: str,
    data_uri: str,
    target: str,
    baseline: Any,
    dataset: Any,
    runtime: Any,
    techniques: list[str] | tuple[str, ...] = (),
    epochs: int = 0,
    calibration_samples: int = 0,
    goals_json: str = "{}",
    s3_endpoint: str = "",
    optimize: bool = True,
) -> ProvisionOutputs:
    """The provision component's body: check the goals, provision, write the runtime spec.

    Args:
        model_uri: As :func:`provision`.
        data_uri: As :func:`provision`.
        target: Target profile name or YAML path.
        baseline: Output artifact (``.path``, ``.metadata``) or directory for the baseline.
        dataset: Output artifact or directory for the split dataset.
        runtime: Output artifact or file path for the runtime spec (JSON).
        techniques: Techniques to run; empty = the target's plan.
        epochs: Fine-tune epochs (0 = each technique's default).
        calibration_samples: INT8 calibration samples (0 = default).
        goals_json: Selection goals (JSON), checked before any heavy work.
        s3_endpoint: S3 endpoint URL for s3:// URIs; "" = from the environment.
        optimize: Plan and check the techniques (False: evaluation only).

    Returns:
        The component's outputs; the artifacts' metadata is set when they carry one.
    """
    from kfedge.fsutil import write_json_atomic

    use_s3_endpoint(s3_endpoint)
    goals = check_goals(goals_json, target)
    (baseline_dir, baseline_meta), (dataset_dir, dataset_meta) = map(
        artifact_parts, (baseline, dataset)
    )
    runtime_file, runtime_meta = artifact_parts(runtime)
    spec = provision(
        model_uri,
        data_uri,
        target,
        baseline_dir,
        dataset_dir,
        techniques=list(techniques) or None,
        optimize=optimize,
        epochs=epochs or None,
        calibration_samples=calibration_samples or None,
    )
    write_json_atomic(runtime_file, spec, sort_keys=False)
    if baseline_meta is not None:
        baseline_meta.update(
            {"name": "baseline", "format": spec["model_format"], "source": model_uri}
        )
    if dataset_meta is not None:
        dataset_meta.update(
            {"source": data_uri, **{f"n_{k}": v for k, v in spec["counts"].items()}}
        )
    if runtime_meta is not None:
        runtime_meta.update({"target": spec["target"], "techniques": ",".join(spec["techniques"])})
    acc = spec["accelerator"] or {}
    return ProvisionOutputs(
        spec["node_selector"],
        spec["tolerations"],
        acc.get("type", ""),
        str(acc.get("count", 0)),
        json.dumps(spec["params"]),
        spec["baseline_format"],
        json.dumps(goals),
    )


def technique_params_from_file(runtime: Any, technique: str) -> str:
    """One technique's parameters (JSON) from provision's runtime spec; prints them.

    Args:
        runtime: The runtime spec artifact (``.path``) or its file path.
        technique: The technique of this branch.

    Returns:
        The parameters as JSON ("{}" = the technique's defaults).
    """
    path, _ = artifact_parts(runtime)
    params = json.loads(path.read_text())["params"].get(technique, {})
    print(f"[kfedge] {technique}: {params or 'defaults'}")
    return json.dumps(params)


def import_model_to(uri: str, model: Any, s3_endpoint: str = "") -> str:
    """The import_model component's body: fetch ``uri`` as a candidate into ``model``.

    Args:
        uri: Path, file:// or s3:// URI of a model or a kfedge candidate directory.
        model: Output artifact (``.path``, ``.metadata``) or directory.
        s3_endpoint: S3 endpoint URL; "" = from the environment.

    Returns:
        The candidate's name.
    """
    use_s3_endpoint(s3_endpoint)
    path, meta = artifact_parts(model)
    cand = import_candidate(uri, path)
    if meta is not None:
        meta.update(cand.kfp_metadata())
    return cand.name
