"""The report as Markdown (report.md): selection, goals, the seeds' summary, every candidate."""

from __future__ import annotations

import json
from typing import Any

from kfedge.compare import measurement_line
from kfedge.provenance import MARK, selection_caveat
from kfedge.report_table import (
    EVIDENCE_HEADER,
    SEEDS_HEADER,
    TABLE_HEADER,
    TABLE_NOTE,
    base_row,
    evidence_cells,
    machine_of,
    notes,
    reason_text,
    row_cells,
    seeds_cells,
)


def md_escape(s: str) -> str:
    """Text safe inside a Markdown table cell (HTML-escaped, pipes escaped, one line)."""
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with escaped cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(rep: dict[str, Any], selection: dict[str, Any] | None) -> str:
    """The Markdown page of a report.

    Args:
        rep: The report.json dict (:func:`kfedge.report.build_report`).
        selection: The selection it was built with (for the reason and warnings), or None.

    Returns:
        The Markdown text.
    """
    rows, base = rep["candidates"], base_row(rep)
    m = machine_of(rep)
    parts = [
        f"# {md_escape(rep['title'])}",
        "",
        f"Baseline: **{md_escape(rep['baseline'])}** · target: {rep['target'] or 'n/a'} · "
        f"threads: {rep['threads']} · machine: {m.get('arch', '?')} "
        f"{md_escape(str(m.get('cpu', '')))} ({m.get('cpu_count')} "
        f"cores) · {rep['created']}",
        "",
        md_escape(measurement_line(rep.get("measurement"))),
        "",
    ]
    where = (rep.get("provenance") or {}).get("note")
    if where:
        parts += [f"> **{md_escape(where)}**", ""]
    parts += [
        "## Selection",
        "",
        f"**Selected: {md_escape(rep['selected'] or 'none')}** — "
        f"{md_escape(reason_text(rep, selection))}",
        "",
    ]
    evidence = (selection or {}).get("evidence") or []
    if evidence:
        parts += [md_table(EVIDENCE_HEADER, [evidence_cells(e) for e in evidence]), ""]
    if where:
        parts += [f"{MARK} {md_escape(selection_caveat(rep))}", ""]
    if rep["goals"]:
        goals = {k: v for k, v in rep["goals"].items() if v is not None}
        parts += [f"Goals: `{json.dumps(goals, sort_keys=True)}`", ""]
    parts += [
        "## Summary (original vs best PTQ vs best QAT)",
        "",
        md_table(SEEDS_HEADER, [seeds_cells(rep["summary"])]),
        "",
        "## Candidates",
        "",
        "Latency: p50/p90/p99 at batch 1, warm-up excluded, each candidate timed in its own "
        "process. " + TABLE_NOTE,
        "",
        md_table(TABLE_HEADER, [row_cells(r, base) for r in rows]),
        "",
    ]
    for title, lines in notes(rep).items():
        parts += [f"## {title}", ""] + [f"- {md_escape(x)}" for x in lines] + [""]
    failed = [r for r in rows if r["failed_goals"]]
    if failed:
        parts += ["## Failed goals", ""]
        parts += [f"- **{md_escape(r['name'])}**: {'; '.join(r['failed_goals'])}" for r in failed]
        parts.append("")
    warnings = rep.get("warnings") or (selection or {}).get("warnings") or []
    if warnings:
        parts += ["## Warnings", ""] + [f"- {md_escape(w)}" for w in warnings] + [""]
    return "\n".join(parts)
