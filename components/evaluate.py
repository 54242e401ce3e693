"""KFP component ``evaluate``: accuracy, latency, size and memory of one candidate on this node."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kfedge.components import edge_component


@edge_component
def evaluate(
    model: Input[Model],
    dataset: Input[Dataset],
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
    name: str = "",
    threads: int = 0,
    batch_size: int = 32,
    latency_runs: int = 200,
    target: str = "",
):
    """Measure accuracy, latency, size and memory of one candidate on this node.

    Runs in the serving image (no TensorFlow): the candidate must be a .tflite, .onnx or
    OpenVINO model (pipelines export Keras models first). Latency is timed in a fresh
    subprocess holding only the candidate's runtime, with the runner the model server uses; in
    the pipelines it is a rough figure (other evaluations may share the node), the side-by-side
    ``benchmark`` step's timings decide.

    Args:
        model: The candidate directory (model file + candidate.json) or a model.
        dataset: The split dataset (its eval split is scored).
        metrics: Scalars: accuracy, top5, latency_p50/p90/p99_ms, size_mb, gzip_mb, sparsity,
            throughput_batch_1 / throughput_batch_n, peak_rss_mb.
        evaluation: The full evaluation JSON (confusion matrix, per-class precision and recall,
            latency distribution, size and weight statistics, output of the first sample).
        name: Name in the report (default: the candidate's name).
        threads: Inference threads (0 = the node's default).
        batch_size: Batch of the accuracy pass and the throughput measurement.
        latency_runs: Timed batch-1 runs (adaptive, at least 30; the pipelines use 30).
        target: Target profile: its ONNX Runtime providers and thread count are used.
    """
    from kfedge.evaluate import evaluate_from_files

    ev = evaluate_from_files(
        model.path,
        dataset.path,
        evaluation.path,
        name=name or model.metadata.get("name", ""),
        threads=threads,
        batch_size=batch_size,
        latency_runs=latency_runs,
        target=target,
    )
    for key, value in ev.kfp_metrics().items():
        metrics.log_metric(key, value)
    evaluation.metadata.update(ev.kfp_metadata())
