"""KFP component ``decide``: a fleet target's selection by its goals, and its report."""

from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Model, Output

from kfedge.components import component


@component
def decide(
    measured: Input[Artifact],
    bundle: Input[Artifact],
    baseline: Input[Model],
    timings: Input[Artifact],
    target: str,
    selection: Output[Artifact],
    chosen: Output[Model],
    summary: Output[Metrics],
    markdown: Output[Markdown],
    html: Output[HTML],
    report_json: Output[Artifact],
    goals_json: str = "",
) -> bool:
    """Select a target's candidate by its goals and write its report (the KFP UI's).

    Args:
        measured: The measure step's evaluations.
        bundle: Every candidate of the fleet.
        baseline: The target's FP32 reference (deployed when it is the best that passes).
        timings: The measure step's side-by-side timings.
        target: The target profile name.
        selection: JSON: selected, reason, ranking, per-candidate goal results.
        chosen: A copy of the selected candidate (NOT_SELECTED.txt when none passes).
        summary: Scalars of the selected candidate and its ratios to the reference.
        markdown: The target's report in Markdown.
        html: The target's report in HTML.
        report_json: The target's report.json.
        goals_json: The target's goals (the place_target step's).

    Returns:
        Whether a candidate was selected (gate the deploy step with dsl.If on it).
    """
    from kfedge.fleet import decide_from_files

    out = decide_from_files(
        measured, bundle, baseline, timings, goals_json, target, selection, chosen,
        report_json, markdown, html,
    )  # fmt: skip
    selection.metadata.update(out["selection_metadata"])
    chosen.metadata.update(out["chosen_metadata"])
    for key, value in out["metrics"].items():
        summary.log_metric(key, value)
    report_json.metadata.update(out["report_metadata"])
    return out["deploy"]
