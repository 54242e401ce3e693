"""KFP component ``measure``: a fleet target's candidates evaluated and timed on its node."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfedge.components import edge_component


@edge_component
def measure(
    bundle: Input[Artifact],
    baseline: Input[Model],
    dataset: Input[Dataset],
    fleet: Input[Artifact],
    target: str,
    evaluations: Output[Artifact],
    timings: Output[Artifact],
    latency_runs: int = 30,
    rounds: int = 5,
):
    """Evaluate a target's candidates one after another, then time them side by side.

    Runs on the target's node in the serving image (no TensorFlow); nothing else the run
    controls uses the node meanwhile (targets that may share a node wait their turn).

    Args:
        bundle: Every candidate of the fleet (the bundle step's).
        baseline: The target's FP32 reference.
        dataset: The split dataset (its eval split is scored).
        fleet: The plan_fleet step's fleet spec (which candidates the target runs).
        target: The target profile name.
        evaluations: Directory: one evaluation JSON per candidate and the baseline's.
        timings: The side-by-side timings (p50 with interval, ratios, the node).
        latency_runs: Timed runs of each evaluation's own latency (a rough figure).
        rounds: Interleaved rounds of the side-by-side benchmark (>= 3 for an interval).
    """
    from kfedge.fleet import measure_from_files

    out = measure_from_files(
        bundle, baseline, dataset, fleet, target, evaluations, timings, latency_runs, rounds
    )
    evaluations.metadata.update({"target": target, "candidates": ",".join(out["names"])})
    timings.metadata["off_target"] = out["off_target"]
