"""The fleet report: which candidate goes to which target and why, and every target's figures.

Built from the per-target report.json files (:func:`kfedge.report.make_report`), so each
figure is the one that target's selection weighed. One comparison table holds every
candidate, with a column group per target (accuracy, p50 latency, ratio to that target's FP32
reference, size); a candidate a target does not run is ``-`` there. Every figure of a target
whose latency was not measured on its hardware carries the mark ``‡`` (kfp.local runs every
target on this machine), and the target's note says why.
"""

from __future__ import annotations

import datetime as _dt
import json
from html import escape
from pathlib import Path
from typing import Any

from kfedge.errors import InvalidInputError
from kfedge.evaluation import MB
from kfedge.provenance import MARK

#: The columns of each target's group (:func:`_cells` fills them, in this order).
_COLUMNS = ("accuracy", "p50 ms", "× FP32", "size MB")


def _cells(row: dict[str, Any]) -> list[str]:
    ratio = row.get("latency_ratio")
    return [
        f"{row['accuracy']:.4f}",
        f"{row['latency_ms']['p50']:.3f}",
        f"{ratio:.2f}x" if ratio else "-",
        f"{row['size_bytes'] / MB:.3f}",
    ]


def make_fleet_report(reports: dict[str, dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """The fleet report dict from per-target reports, in the fleet's target order.

    Args:
        reports: Target name -> its report.json dict.
        spec: The fleet spec (:func:`kfedge.fleet.plan_fleet`).

    Returns:
        ``title``, ``created``, ``targets`` (per target: selected, deploy, reason, baseline,
        on_target, note, service_name, rows) and ``summary`` (one line per target).

    Raises:
        InvalidInputError: A target of the fleet has no report.
    """
    missing = [t for t in spec["targets"] if t not in reports]
    if missing:
        raise InvalidInputError(f"no report for target(s) {missing} (have {sorted(reports)})")
    targets: dict[str, Any] = {}
    summary: list[dict[str, Any]] = []
    for name, t in spec["targets"].items():
        rep = reports[name]
        where = rep.get("provenance") or {}
        sel = rep.get("selected")
        row = next((r for r in rep["candidates"] if r["name"] == sel), None)
        entry = {
            "selected": sel,
            "deploy": bool(rep.get("deploy")),
            "reason": rep.get("reason") or "",
            "baseline": rep["baseline"],
            "on_target": where.get("on_target"),
            "note": where.get("note") or "",
            "measured_on": where.get("measured_isa"),
            "service_name": t.get("service_name"),
            "goals": rep.get("goals") or t.get("goals"),
            "rows": {r["name"]: r for r in rep["candidates"]},
        }
        targets[name] = entry
        summary.append(
            {
                "target": name,
                "selected": sel,
                "deploy": entry["deploy"],
                "service_name": entry["service_name"] if entry["deploy"] else None,
                "latency_ratio": row.get("latency_ratio") if row else None,
                "accuracy_delta_pts": row.get("accuracy_delta_pts") if row else None,
                "on_target": entry["on_target"],
                "reason": entry["reason"],
            }
        )
    return {
        "title": "kfedge fleet report",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "targets": targets,
        "summary": summary,
        "jobs": {
            k: {"technique": j["technique"], "name": j["name"], "targets": j["targets"]}
            for k, j in spec["jobs"].items()
        },
    }


def _row_names(rep: dict[str, Any]) -> list[str]:
    """Every candidate, each target's FP32 reference first, in first-seen order."""
    names: list[str] = []
    for t in rep["targets"].values():
        for n in [t["baseline"], *t["rows"]]:
            if n not in names:
                names.append(n)
    return names


def _table(rep: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The comparison table: header cells and rows (plain text cells)."""
    header = ["candidate"]
    for name in rep["targets"]:
        header += [f"{name}: {c}" for c in _COLUMNS]
    rows = []
    for cand in _row_names(rep):
        cells = [cand]
        for t in rep["targets"].values():
            r = t["rows"].get(cand)
            if r is None:
                cells += ["-"] * len(_COLUMNS)
                continue
            mark = MARK if t["on_target"] is False else ""
            got = [f"{c}{mark}" for c in _cells(r)]
            if r["name"] == t["selected"]:
                got = [f"**{c}**" for c in got]
            elif not r.get("passed_goals", True):
                got[0] = f"{got[0]} ✗"
            cells += got
        rows.append(cells)
    return header, rows


def _summary_lines(rep: dict[str, Any]) -> list[str]:
    out = []
    for s in rep["summary"]:
        t = rep["targets"][s["target"]]
        if s["selected"]:
            ratio = s["latency_ratio"]
            fig = f"{ratio:.2f}x its FP32 latency" if ratio else "its FP32 reference"
            mark = MARK if t["on_target"] is False else ""
            delta = s["accuracy_delta_pts"]
            acc = f", accuracy {delta:+.2f} pts{mark}" if delta is not None else ""
            where = f" → InferenceService {s['service_name']}" if s["deploy"] else ""
            out.append(
                f"- **{s['target']}**: {s['selected']} ({fig}{mark}{acc}){where}. {s['reason']}"
            )
        else:
            out.append(f"- **{s['target']}**: nothing deployed. {s['reason']}")
    return out


def fleet_markdown(rep: dict[str, Any]) -> str:
    """The fleet report in Markdown: the summary, the notes, the comparison table."""
    lines = [f"# {rep['title']}", "", "## Which candidate goes where", ""]
    lines += _summary_lines(rep)
    notes = [(n, t["note"]) for n, t in rep["targets"].items() if t["note"]]
    if notes:
        lines += [""] + [f"{MARK} {n}: {note}" for n, note in notes]
    header, rows = _table(rep)
    lines += [
        "",
        "## Every candidate on every target",
        "",
        "Bold: the target's choice; ✗: misses the target's goals; -: the target does not run it; "
        "× FP32: p50 latency against that target's FP32 reference, timed side by side.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def fleet_html(rep: dict[str, Any]) -> str:
    """The fleet report as self-contained HTML (the KFP UI's HTML viewer)."""
    items = "".join(
        f"<li>{escape(line[2:]).replace('**', '')}</li>" for line in _summary_lines(rep)
    )
    notes = "".join(
        f'<p class="warn">{MARK} {escape(n)}: {escape(t["note"])}</p>'
        for n, t in rep["targets"].items()
        if t["note"]
    )
    header, rows = _table(rep)
    groups = "".join(f'<th colspan="{len(_COLUMNS)}">{escape(n)}</th>' for n in rep["targets"])
    sub = "".join(f"<th>{escape(c)}</th>" for _ in rep["targets"] for c in _COLUMNS)

    def cell(c: str) -> str:
        if c.startswith("**"):
            return f"<td><strong>{escape(c.strip('*'))}</strong></td>"
        return f"<td>{escape(c)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(rep['title'])}</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}.warn{color:#a40}"
        f"</style></head><body><h1>{escape(rep['title'])}</h1>"
        f"<h2>Which candidate goes where</h2><ul>{items}</ul>{notes}"
        "<h2>Every candidate on every target</h2>"
        f"<table><tr><th rowspan='2'>candidate</th>{groups}</tr><tr>{sub}</tr>{body}</table>"
        "</body></html>"
    )


def _reports(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Per-target report dicts from report files or bundles of them."""
    out: dict[str, dict[str, Any]] = {}
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    for f in files:
        if f.name == "index.json":
            continue
        data = json.loads(f.read_text())
        if isinstance(data, dict) and "candidates" in data and data.get("target"):
            out[data["target"]] = data
    return out


def fleet_report_from_files(
    reports: list[Any], fleet: Any, json_path: Any, markdown_path: Any, html_path: Any
) -> dict[str, Any]:
    """The fleet_report step: read the per-target reports, write the fleet report.

    Args:
        reports: Report files, or bundles (directories) of them.
        fleet: The fleet spec artifact.
        json_path: Destination of fleet-report.json.
        markdown_path: Destination of the Markdown report.
        html_path: Destination of the HTML report.

    Returns:
        Metadata for the KFP UI: per target the selected candidate ("" when none).
    """
    from kfedge.candidate import artifact_parts
    from kfedge.fleet import read_spec
    from kfedge.fsutil import write_json_atomic, write_text_atomic

    paths = [artifact_parts(r)[0] for r in reports]
    rep = make_fleet_report(_reports(paths), read_spec(fleet))
    write_json_atomic(artifact_parts(json_path)[0], rep, sort_keys=False)
    write_text_atomic(artifact_parts(markdown_path)[0], fleet_markdown(rep))
    write_text_atomic(artifact_parts(html_path)[0], fleet_html(rep))
    for line in _summary_lines(rep):
        print(f"[kfedge] {line[2:].replace('**', '')}")
    return {s["target"]: s["selected"] or "" for s in rep["summary"]}
