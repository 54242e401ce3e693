"""Provision component: import and check the model and data, resolve the target, plan techniques."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfedge._version import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def provision(
    model_uri: str,
    data_uri: str,
    target: str,
    baseline: Output[Model],
    dataset: Output[Dataset],
    runtime: Output[Artifact],
    techniques: list = [],  # noqa: B006 - KFP parameter default
    epochs: int = 0,
    calibration_samples: int = 0,
    goals_json: str = "{}",
    s3_endpoint: str = "",
    optimize: bool = True,
) -> NamedTuple(
    "ProvisionOutputs",
    [
        ("node_selector", dict),
        ("tolerations", list),
        ("accelerator_type", str),
        ("accelerator_count", str),
        ("plan", str),
        ("baseline_format", str),
        ("goals", str),
    ],
):
    """Import and check the model and data, resolve the edge target and plan the techniques.

    Args:
        model_uri: ``sample://baseline`` (train the built-in sample), or a path / ``s3://`` URI of a
            Keras file, SavedModel, TFLite or ONNX model.
        data_uri: ``sample://digits``, or a path / ``s3://`` URI of an .npz (x, y), an image-folder
            tree or a split dataset.
        target: Target profile name (see ``kfedge targets``), e.g. cpu-arm64, nvidia-jetson.
        baseline: The checked baseline model (candidate directory).
        dataset: The split dataset (train / calibration / eval .npz + dataset.json).
        runtime: The runtime spec (JSON): target, placement, techniques and their parameters.
        techniques: Techniques to run (see ``kfedge techniques``); empty = the target's plan.
        epochs: Fine-tune epochs for QAT / pruning / clustering (0 = technique default).
        calibration_samples: INT8 calibration samples (0 = default).
        goals_json: Selection goals (JSON), checked here before any heavy work.
        s3_endpoint: S3 endpoint URL for s3:// URIs (credentials come from the Secret mounted
            as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); empty = from the environment.
        optimize: Plan and check the techniques (False in edge-evaluate, which only measures).

    Returns:
        node_selector: The target's node selector (for kfp-kubernetes add_node_selector_json).
        tolerations: The target's tolerations (for add_toleration_json).
        accelerator_type: The accelerator resource (e.g. nvidia.com/gpu), "" when none.
        accelerator_count: Accelerators per pod ("0" when none; a string so that it can pass
            through ParallelFor sub-DAGs under kfp.local).
        plan: JSON map technique -> parameters for the optimize steps.
        baseline_format: Format of the FP32 reference export (the target's preferred format).
        goals: The goals (JSON), with the FP32 baseline excluded from selection when the
            target cannot run it (e.g. the Edge TPU runs int8 only).
    """
    import json
    import os

    from kfedge.provision import check_goals
    from kfedge.provision import provision as run

    if s3_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    goals = check_goals(goals_json, target)
    spec = run(
        model_uri,
        data_uri,
        target,
        baseline.path,
        dataset.path,
        techniques=list(techniques) or None,
        optimize=optimize,
        epochs=epochs or None,
        calibration_samples=calibration_samples or None,
    )
    os.makedirs(os.path.dirname(runtime.path) or ".", exist_ok=True)
    with open(runtime.path, "w") as fh:
        json.dump(spec, fh, indent=2)
    baseline.metadata.update(
        {"name": "baseline", "format": spec["model_format"], "source": model_uri}
    )
    dataset.metadata.update(
        {"source": data_uri, **{f"n_{k}": v for k, v in spec["counts"].items()}}
    )
    runtime.metadata.update({"target": spec["target"], "techniques": ",".join(spec["techniques"])})
    acc = spec["accelerator"] or {}
    return (
        spec["node_selector"],
        spec["tolerations"],
        acc.get("type", ""),
        str(acc.get("count", 0)),
        json.dumps(spec["params"]),
        spec["baseline_format"],
        json.dumps(goals),
    )


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def technique_params(
    runtime: Input[Artifact],
    technique: str,
    accelerator_type: str = "",
    accelerator_count: str = "0",
) -> str:
    """Pick one technique's parameters (JSON) out of the provision step's runtime spec.

    Args:
        runtime: The runtime spec written by provision (its ``params`` map).
        technique: The technique of this branch.
        accelerator_type: Not used by this step: passing the provision outputs here makes KFP's
            compiler carry them into the ParallelFor sub-DAG, where the evaluate step requests
            the target's accelerator with them.
        accelerator_count: Likewise, the accelerator count.

    Returns:
        The technique's parameters as JSON ("{}" = the technique's defaults).
    """
    import json

    with open(runtime.path) as fh:
        params = json.load(fh)["params"].get(technique, {})
    print(f"[kfedge] {technique}: {params or 'defaults'}")
    return json.dumps(params)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def import_model(
    uri: str,
    model: Output[Model],
    s3_endpoint: str = "",
    accelerator_type: str = "",
    accelerator_count: str = "0",
) -> str:
    """Bring a model from storage into the pipeline as a candidate (for edge-evaluate).

    Args:
        uri: Path, file:// or s3:// URI of a .tflite, .onnx, .keras, .h5, SavedModel or a
            candidate directory written by kfedge.
        model: The model as a candidate directory.
        s3_endpoint: S3 endpoint URL for s3:// URIs; empty = from the environment.
        accelerator_type: Not used by this step: it carries the provision output into the
            ParallelFor sub-DAG, where the evaluate step requests the target's accelerator.
        accelerator_count: Likewise, the accelerator count.

    Returns:
        The candidate's name.
    """
    import os

    from kfedge.provision import import_candidate

    if s3_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    cand = import_candidate(uri, model.path)
    model.metadata.update(cand.kfp_metadata())
    return cand.name
