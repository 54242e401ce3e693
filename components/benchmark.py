"""KFP component ``benchmark``: every candidate's latency, side by side, on the target node."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfedge.components import component


@component
def benchmark(
    models: Input[list[Model]],
    dataset: Input[Dataset],
    timings: Output[Artifact],
    target: str = "",
    threads: int = 0,
    rounds: int = 5,
):
    """Time every candidate side by side on this node: the latency that decides the deployment.

    Runs once, after every candidate exists, so nothing else the pipeline controls runs on the
    node meanwhile. Each model gets a fresh worker process holding only its runtime (no
    TensorFlow); the workers time batch-1 bursts in interleaved rounds, in rotating order, with
    pauses; threads never exceed the CPUs this pod may use. Ratios between candidates come with
    confidence intervals from the paired rounds, so selection can tell real differences from
    noise.

    Args:
        models: The candidate directories (dsl.Collected from the optimize loop, plus the FP32
            references).
        dataset: The split dataset (its first eval sample is the input).
        timings: JSON: per candidate p50 with interval, p90 / p99, each round's p50, the
            runtime used (providers / delegate / device, CPU fallback), threads and CPUs.
        target: Target profile: providers, delegate, device, threads, CPU fallback rule.
        threads: Inference threads (0 = the profile's, else every CPU the pod may use).
        rounds: Interleaved rounds (>= 3 for an interval).
    """
    from kfedge.sidebyside import benchmark_from_files

    result = benchmark_from_files(
        [m.path for m in models],
        dataset.path,
        timings.path,
        names=[m.metadata.get("name", "") for m in models],
        target=target,
        threads=threads,
        rounds=rounds,
    )
    timings.metadata.update(result.kfp_metadata())
