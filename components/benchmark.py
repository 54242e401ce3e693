"""KFP component ``benchmark``: every candidate's latency, side by side, on the target node."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfedge.components import edge_component


@edge_component
def benchmark(
    baseline: Input[Model],
    models: Input[list[Model]],
    dataset: Input[Dataset],
    timings: Output[Artifact],
    target: str = "",
    threads: int = 0,
    rounds: int = 5,
):
    """Time every candidate side by side on this node: the latency that decides the deployment.

    Runs once, after every candidate exists and every evaluation is done, so nothing else the
    pipeline controls runs on the node meanwhile; its pod asks for whole CPUs with limits equal
    to requests. Each model gets a fresh worker process holding only its runtime (no
    TensorFlow); the workers time batch-1 bursts in interleaved rounds, in rotating order, with
    pauses; threads never exceed the CPUs this pod may use. Ratios between candidates come with
    confidence intervals from the paired rounds, so selection can tell real differences from
    noise.

    Args:
        baseline: The FP32 reference every candidate is compared with (timed with them).
        models: The candidate directories (dsl.Collected from the optimize loop; FP32
            references among them are timed too).
        dataset: The split dataset (its first eval sample is the input).
        timings: JSON: per candidate p50 with interval, p90 / p99, each round's p50, the
            runtime used (providers / delegate / device, CPU fallback), threads and CPUs.
        target: Target profile: providers, delegate, device, threads, CPU fallback rule.
        threads: Inference threads (0 = the profile's, else every CPU the pod may use).
        rounds: Interleaved rounds (>= 3 for an interval).
    """
    from kfedge.sidebyside import benchmark_from_files

    result = benchmark_from_files(
        [baseline.path, *(m.path for m in models)],
        dataset.path,
        timings.path,
        names=[m.metadata.get("name", "") for m in (baseline, *models)],
        target=target,
        threads=threads,
        rounds=rounds,
    )
    timings.metadata.update(result.kfp_metadata())
