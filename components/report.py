"""KFP component ``report``: the original-vs-optimized comparison for the KFP UI."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Input, Markdown, Metrics, Output

from kfedge.components import component


@component
def report(
    evaluations: Input[list[Artifact]],
    baseline_evaluation: Input[Artifact],
    selection: Input[Artifact],
    timings: Input[Artifact],
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
        timings: The benchmark step's side-by-side timings of every candidate.
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
        timings_path=timings.path,
    )
    for key, value in out["metrics"].items():
        summary.log_metric(key, value)
    confusion.log_confusion_matrix(out["confusion"]["classes"], out["confusion"]["matrix"])
    confusion.metadata["candidate"] = out["confusion"]["name"]
    report_json.metadata.update(out["report_metadata"])
