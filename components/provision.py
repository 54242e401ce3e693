"""KFP component ``provision``: import and check model and data, resolve the target, plan."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Model, Output

from kfedge.components import component


@component
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
            as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); empty = from the environment, else
            (in a pod) KFP's own object store.
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
    from kfedge.provision import provision_from_files

    return provision_from_files(
        model_uri,
        data_uri,
        target,
        baseline,
        dataset,
        runtime,
        techniques=techniques,
        epochs=epochs,
        calibration_samples=calibration_samples,
        goals_json=goals_json,
        s3_endpoint=s3_endpoint,
        optimize=optimize,
    )
