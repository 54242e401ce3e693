"""KFP component ``fleet_report``: one report for every target of a fleet."""

from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from kfedge.components import component


@component
def fleet_report(
    reports: Input[list[Artifact]],
    fleet: Input[Artifact],
    markdown: Output[Markdown],
    html: Output[HTML],
    report_json: Output[Artifact],
):
    """The fleet's report: which candidate goes where and why, and every target's figures.

    Args:
        reports: The node groups' bundles of per-target report.json files.
        fleet: The plan_fleet step's fleet spec.
        markdown: The fleet report in Markdown: the fleet summary, then one comparison table
            with a column group per target.
        html: The same as self-contained HTML.
        report_json: fleet-report.json: per target its selection, reason and report.
    """
    from kfedge.report_fleet import fleet_report_from_files

    out = fleet_report_from_files(list(reports), fleet, report_json, markdown, html)
    report_json.metadata.update(out)
