"""KFP component ``plan_fleet``: import and check model and data once, plan every target."""

from kfp.dsl import Artifact, Dataset, Model, Output

from kfedge.components import component


@component
def plan_fleet(
    model_uri: str,
    data_uri: str,
    targets: list,
    baseline: Output[Model],
    dataset: Output[Dataset],
    fleet: Output[Artifact],
    techniques: list = [],  # noqa: B006 - KFP parameter default
    epochs: int = 0,
    calibration_samples: int = 0,
    goals_json: str = "{}",
    s3_endpoint: str = "",
) -> list:
    """Plan a fleet: each target's techniques and goals, shared optimize jobs, node groups.

    Args:
        model_uri: ``sample://baseline``, or a path / ``s3://`` URI of a Keras file or
            SavedModel.
        data_uri: ``sample://digits``, or a path / ``s3://`` URI of an .npz (x, y), an
            image-folder tree or a split dataset.
        targets: Target profile names, e.g. ["cpu-arm64", "intel-cpu-openvino"].
        baseline: The checked baseline model (candidate directory).
        dataset: The split dataset (train / calibration / eval .npz + dataset.json).
        fleet: The fleet spec (fleet.json): per target its placement, goals, FP32 reference
            and candidates; the optimize jobs; the node groups.
        techniques: Techniques to run, each for every target that runs what it writes; empty
            = each target's default plan.
        epochs: Fine-tune epochs for QAT / pruning / clustering (0 = technique default).
        calibration_samples: INT8 calibration samples (0 = default).
        goals_json: Goals (JSON) for every target, with per-target overrides under
            "targets", e.g. {"max_accuracy_drop": 0.015, "targets": {"cpu-arm64":
            {"max_latency_ms": 20}}}; checked here before any heavy work.
        s3_endpoint: S3 endpoint URL for s3:// URIs; empty = from the environment, else (in
            a pod) KFP's own object store.

    Returns:
        The optimize jobs: each distinct technique once (per distinct parameter set).
    """
    from kfedge.fleet import plan_fleet_from_files

    return plan_fleet_from_files(
        model_uri,
        data_uri,
        targets,
        baseline,
        dataset,
        fleet,
        techniques=techniques,
        epochs=epochs,
        calibration_samples=calibration_samples,
        goals_json=goals_json,
        s3_endpoint=s3_endpoint,
    )
