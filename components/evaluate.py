"""KFP components: evaluate a candidate, select the one to deploy, report the comparison.

Interface only: each body imports kfedge, calls one library function and writes outputs.

``select`` returns a single ``bool`` (deploy) rather than a NamedTuple so that the pipeline can
gate the deploy step with ``dsl.If(select_task.output == True)``: kfp 2.17.3's local runner
resolves only single outputs named ``Output`` inside ``dsl.If`` conditions (a NamedTuple field
is looked up as a parent input, "Could not resolve parent input", and the branch is skipped).
The selected name is in the ``selection`` artifact and in the ``chosen`` model's metadata.
Candidates evaluated in a ``dsl.ParallelFor`` come in as ``dsl.Collected`` lists; the
evaluation and model lists are paired by position.
"""

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from kfedge._version import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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

    Latency is timed in a fresh subprocess holding only the candidate's runtime, with the
    runner the model server uses.

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
        latency_runs: Timed batch-1 runs (adaptive, at least 30).
        target: Target profile: its ONNX Runtime providers and thread count are used.
    """
    from kfedge.evaluate import evaluate as evaluate_candidate
    from kfedge.evaluate import kfp_metrics, save_evaluation

    providers = None
    if target:
        from kfedge.targets import load_target

        profile = load_target(target)
        providers = list(profile.onnx_providers)
        threads = threads or profile.threads or 0
    result = evaluate_candidate(
        model.path,
        dataset.path,
        name=name or model.metadata.get("name") or None,
        threads=threads or None,
        batch_size=batch_size,
        latency_runs=latency_runs,
        providers=providers,
    )
    result["target"] = target or None
    save_evaluation(result, evaluation.path)
    for key, value in kfp_metrics(result).items():
        metrics.log_metric(key, value)
    evaluation.metadata.update(
        {k: result[k] for k in ("name", "technique", "format", "accuracy", "size_bytes")}
    )
    evaluation.metadata["latency_p50_ms"] = result["latency_ms"]["p50"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def select(
    evaluations: Input[list[Artifact]],
    models: Input[list[Model]],
    baseline_evaluation: Input[Artifact],
    baseline_model: Input[Model],
    selection: Output[Artifact],
    chosen: Output[Model],
    goals_json: str = "",
) -> bool:
    """Check every candidate against the goals and pick the one to deploy.

    Args:
        evaluations: Evaluations of the candidates (dsl.Collected from a ParallelFor).
        models: The candidates, in the same order as ``evaluations``.
        baseline_evaluation: Evaluation of the FP32 baseline every candidate is compared with.
        baseline_model: The baseline candidate (deployed when it is the best that meets the
            goals).
        selection: JSON: selected, reason, ranking, per-candidate passed / failed_goals.
        chosen: A copy of the selected candidate directory (empty with NOT_SELECTED.txt when
            no candidate meets the goals).
        goals_json: Goals as JSON, e.g. {"max_accuracy_drop": 0.01, "objective": "latency"}
            (accuracy drops are fractions: 0.01 = 1 point).

    Returns:
        Whether a candidate was selected (gate the deploy step with dsl.If on it).
    """
    from kfedge.select import select_from_files

    result = select_from_files(
        [e.path for e in evaluations],
        baseline_evaluation.path,
        goals_json,
        selection.path,
        model_dirs=[m.path for m in models],
        baseline_model_dir=baseline_model.path,
        chosen_dir=chosen.path,
    )
    selection.metadata.update({"selected": result["selected"] or "", "deploy": result["deploy"]})
    selection.metadata["reason"] = result["reason"]
    chosen.metadata.update(result.get("chosen_metadata", {}))
    chosen.metadata["selected"] = result["selected"] or ""
    return result["deploy"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def report(
    evaluations: Input[list[Artifact]],
    baseline_evaluation: Input[Artifact],
    selection: Input[Artifact],
    summary: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    markdown: Output[Markdown],
    html: Output[HTML],
    report_json: Output[Artifact],
    title: str = "kfedge report",
    target: str = "",
):
    """Compare every candidate with the baseline: tables, charts, goals, selection.

    Args:
        evaluations: Evaluations of the candidates (dsl.Collected from a ParallelFor).
        baseline_evaluation: Evaluation of the FP32 baseline.
        selection: The select step's JSON.
        summary: Scalars of the selected candidate (else the baseline) and its ratios to the
            baseline; candidates, passing and deploy counts.
        confusion: Confusion matrix of the selected candidate (else the baseline).
        markdown: The report in Markdown (the seeds' table shape).
        html: Self-contained HTML report: accuracy/latency chart with the Pareto front, size
            bars, the table, failed goals and the selection reason.
        report_json: report.json for machines (every candidate with its goal results).
        title: Report title.
        target: Target profile name shown in the report.
    """
    from kfedge.report import report_from_files

    out = report_from_files(
        [e.path for e in evaluations],
        baseline_evaluation.path,
        selection.path,
        report_json.path,
        markdown.path,
        html.path,
        title=title,
        target=target or None,
    )
    for key, value in out["metrics"].items():
        summary.log_metric(key, value)
    confusion.log_confusion_matrix(out["confusion"]["classes"], out["confusion"]["matrix"])
    confusion.metadata["candidate"] = out["confusion"]["name"]
    report_json.metadata.update(
        {"selected": out["report"]["selected"] or "", "baseline": out["report"]["baseline"]}
    )
