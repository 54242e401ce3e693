"""The comparison report's data: report.json for machines, rendered as report.md and report.html.

This module computes what the report says: one row per candidate against the baseline (deltas
and ratios, goal results), the Pareto front of accuracy against latency, and the seeds' summary
(original vs best PTQ vs best QAT; a candidate's group comes from its technique chain through
:func:`kfedge.techniques.report_group`). The pages are drawn by :mod:`kfedge.report_md` and
:mod:`kfedge.report_html` from the same report dict; :mod:`kfedge.report_table` formats the
cells all of them share.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kfedge.compare import (
    PRACTICAL,
    SIDE_BY_SIDE,
    Latency,
    TimingsLike,
    accuracy_figures,
    int8_isa_note,
    latency_figures,
    load_timings,
    measurement,
    measurement_line,
    ratio_text,
)
from kfedge.errors import InvalidInputError
from kfedge.evaluation import MB, Evaluation, EvaluationLike, as_evaluations, load_evaluation
from kfedge.failure import read_evaluation_file
from kfedge.provenance import MARK, provenance
from kfedge.report_html import render_html
from kfedge.report_md import render_markdown
from kfedge.report_table import SEEDS_HEADER, TABLE_HEADER, goals_cell, mb, p50_cell
from kfedge.select import find_baseline
from kfedge.techniques import report_group

__all__ = [
    "SEEDS_HEADER",
    "TABLE_HEADER",
    "build_report",
    "make_report",
    "pareto_front",
    "print_summary",
    "report_from_files",
    "report_rows",
    "seeds_summary",
    "write_report",
]


def pareto_front(
    points: Iterable[Evaluation | dict[str, Any] | tuple[str, float, float]],
) -> list[str]:
    """Names of the points no other point beats (maximize accuracy, minimize latency).

    A point is dominated when another has accuracy >= and latency <=, strictly better in one.

    Args:
        points: ``(name, accuracy, latency_ms)`` tuples, evaluations, or report rows / dicts
            with ``name``, ``accuracy`` and ``latency_ms.p50``.

    Returns:
        The front's names ordered by latency (fastest first).
    """
    pts: list[tuple[str, float, float]] = []
    for p in points:
        if isinstance(p, Evaluation):
            pts.append((p.name, p.accuracy, p.latency_ms.p50))
        elif isinstance(p, dict):
            pts.append((str(p["name"]), float(p["accuracy"]), float(p["latency_ms"]["p50"])))
        else:
            pts.append((str(p[0]), float(p[1]), float(p[2])))
    front = []
    for name, acc, lat in pts:
        dominated = any(
            a >= acc and la <= lat and (a > acc or la < lat) for n, a, la in pts if n != name
        )
        if not dominated:
            front.append((lat, -acc, name))
    return [n for _, _, n in sorted(front)]


def report_rows(
    evaluations: list[Evaluation],
    base: Evaluation,
    selection: dict[str, Any] | None,
    figures: dict[str, Latency] | None = None,
    machine: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One report row per evaluation: its figures, ratios to the baseline, its goal results.

    Args:
        evaluations: The evaluations, baseline included.
        base: The baseline's evaluation.
        selection: The selection (for passed / failed goals and the selected name), or None
            (every candidate then passes).
        figures: Latency figures by name (:func:`kfedge.compare.latency_figures`); default:
            the evaluations' own single measurements.
        machine: The timing node (side-by-side ``machine``), for the INT8 ISA check.

    Returns:
        The rows, in the order of ``evaluations``.
    """
    per = {c["name"]: c for c in (selection or {}).get("candidates", [])}
    if figures is None:
        figures = latency_figures(evaluations, base, None)[0]
    rows = []
    for ev in evaluations:
        lat = figures[ev.name]
        c = per.get(ev.name, {})
        acc = accuracy_figures(ev, base)
        rows.append(
            {
                "name": ev.name,
                "technique": ev.technique,
                "format": ev.format,
                "parent": ev.parent,
                "accuracy": ev.accuracy,
                "accuracy_ci": acc["ci"],
                "accuracy_samples": acc["samples"],
                "mcnemar": acc["mcnemar"],
                "mcnemar_note": acc["mcnemar_note"],
                "top5": ev.top5,
                "accuracy_delta_pts": (ev.accuracy - base.accuracy) * 100,
                "latency_ms": {
                    "p50": lat.p50,
                    "p50_ci": list(lat.p50_ci) if lat.p50_ci else None,
                    "p90": lat.p90,
                    "p99": lat.p99,
                    "mean": lat.mean,
                    "runs": lat.runs,
                },
                "latency_source": lat.source,
                "evaluation_latency_p50_ms": ev.latency_ms.p50,
                "latency_ratio": lat.ratio,
                "latency_ratio_ci": list(lat.ratio_ci) if lat.ratio_ci else None,
                "latency_verdict": lat.verdict,
                "latency_tier": c.get("latency_tier"),
                "timing_skipped": lat.skipped,
                "cpu_fallback": lat.cpu_fallback,
                "runtime": lat.runtime,
                "int8_isa": int8_isa_note(ev, machine),
                "throughput": ev.throughput.to_dict() if ev.throughput else {},
                "size_bytes": ev.size_bytes,
                "size_gzip_bytes": ev.size_gzip_bytes,
                "size_ratio": ev.size_bytes / base.size_bytes if base.size_bytes else None,
                "params_count": ev.params_count,
                "sparsity": ev.sparsity,
                "peak_rss_mb": ev.peak_rss_mb,
                "threads": ev.threads,
                "is_baseline": ev.name == base.name,
                "selected": bool(selection) and ev.name == selection.get("selected"),
                "passed_goals": bool(c.get("passed", selection is None)),
                "failed_goals": list(c.get("failed_goals", [])),
                "technique_warnings": list(ev.candidate_stats.get("warnings", [])),
            }
        )
    return rows


def seeds_summary(rows: list[dict[str, Any]], ranking: list[str]) -> dict[str, Any]:
    """The seeds' summary row: the baseline against the best PTQ and the best QAT candidate.

    The best of a group is the best-ranked by the selection, else the fastest. The optimized
    size is the selected candidate's, else the smallest of the two.

    Args:
        rows: Report rows (:func:`report_rows`).
        ranking: The selection's ranking (names, best first), or empty.

    Returns:
        model, accuracy / latency of the original, PTQ and QAT, sizes, and the names chosen.
    """
    base = next(r for r in rows if r["is_baseline"])
    order = {n: i for i, n in enumerate(ranking)}
    best: dict[str, dict[str, Any] | None] = {}
    for grp in ("PTQ", "QAT"):
        members = [r for r in rows if report_group(r["technique"]) == grp and not r["is_baseline"]]
        members.sort(key=lambda r: (order.get(r["name"], len(order)), r["latency_ms"]["p50"]))
        best[grp] = members[0] if members else None
    optimized = [r for r in best.values() if r is not None]
    chosen = next((r for r in rows if r["selected"] and not r["is_baseline"]), None)
    size_opt = chosen or (min(optimized, key=lambda r: r["size_bytes"]) if optimized else None)
    ptq, qat = best["PTQ"], best["QAT"]
    return {
        "model": base["name"],
        "accuracy_original": base["accuracy"],
        "accuracy_ptq": ptq["accuracy"] if ptq else None,
        "accuracy_qat": qat["accuracy"] if qat else None,
        "latency_original_ms": base["latency_ms"]["p50"],
        "latency_ptq_ms": ptq["latency_ms"]["p50"] if ptq else None,
        "latency_qat_ms": qat["latency_ms"]["p50"] if qat else None,
        "size_original_bytes": base["size_bytes"],
        "size_optimized_bytes": size_opt["size_bytes"] if size_opt else None,
        "ptq": ptq["name"] if ptq else None,
        "qat": qat["name"] if qat else None,
        "optimized": size_opt["name"] if size_opt else None,
    }


def make_report(
    evaluations: Iterable[EvaluationLike],
    baseline: str | None = None,
    selection: dict[str, Any] | None = None,
    title: str = "kfedge report",
    target: str | None = None,
    timings: TimingsLike | None = None,
) -> dict[str, Any]:
    """The report.json dict comparing every candidate with the baseline (nothing written).

    Args:
        evaluations: Evaluations (or dicts shaped like their JSON), baseline included.
        baseline: Name of the baseline (default: the selection's, else found by
            :func:`kfedge.select.find_baseline`).
        selection: The result of :func:`kfedge.select.select`, if a selection was made.
        title: Report title.
        target: Target profile name shown in the report.
        timings: The benchmark step's side-by-side timings (session, dict or JSON file):
            every latency figure then comes from them, matched by name, with intervals;
            None: the evaluations' single measurements (older runs).

    Returns:
        title, created, target, baseline, selected, deploy, reason, ranking, goals, threads,
        machine, latency_source, measurement (how latency was taken: rounds, threads, usable
        CPUs and what limited them, the node's CPU and ISA flags, the run's spread),
        provenance (whether latency was measured on the target's CPU class, with the
        sentence that says so: :func:`kfedge.provenance.provenance`),
        pareto_front, summary, candidates (the rows), failed (candidates that failed to be
        made or evaluated, with their reason, from the selection), warnings.

    Raises:
        InvalidInputError: No evaluations, duplicate names, or a selection naming unknown
            candidates.
    """
    evs = as_evaluations(evaluations)
    names = {e.name for e in evs}
    sel = selection or {}
    if selection is not None:
        unknown = {c["name"] for c in sel.get("candidates", [])} - names
        if sel.get("selected") and sel["selected"] not in names:
            unknown.add(sel["selected"])
        if unknown:
            raise InvalidInputError(
                f"the selection names candidates without an evaluation: {sorted(unknown)}"
            )
    base = find_baseline(evs, baseline or sel.get("baseline"))
    sbs = load_timings(timings)
    practical = float((sel.get("goals") or {}).get("tie_within", PRACTICAL))
    figs, timing_warnings = latency_figures(evs, base, sbs, practical)
    rows = report_rows(evs, base, selection, figs, sbs.machine if sbs else None)
    ranking = list(sel.get("ranking", []))
    threads = [sbs.threads] if sbs else sorted({e.threads for e in evs}, key=str)
    machines: list[dict[str, Any]] = []
    for e in evs:
        m = e.machine.to_dict() if e.machine else None
        if m and m not in machines:
            machines.append(m)
    where = provenance(target, sbs.machine if sbs else (machines[0] if machines else None))
    for r in rows:
        r["latency_on_target"] = where["on_target"]
    return {
        "title": title,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "target": target,
        "baseline": base.name,
        "selected": sel.get("selected"),
        "deploy": bool(sel.get("deploy", False)),
        "reason": sel.get("reason"),
        "ranking": ranking,
        "goals": sel.get("goals"),
        "threads": threads[0] if len(threads) == 1 else threads,
        "machine": machines[0]
        if len(machines) == 1
        else {"machines": machines}
        if machines
        else {},
        "latency_source": SIDE_BY_SIDE if sbs else "evaluation",
        "measurement": measurement(sbs, figs),
        "provenance": where,
        "pareto_front": pareto_front(rows),
        "summary": seeds_summary(rows, ranking),
        "candidates": rows,
        "failed": list(sel.get("failed", [])),
        "warnings": list(sel.get("warnings", []))
        + [w for w in timing_warnings if w not in sel.get("warnings", [])],
    }


def write_report(
    rep: dict[str, Any],
    selection: dict[str, Any] | None,
    json_path: str | Path,
    markdown_path: str | Path,
    html_path: str | Path,
) -> dict[str, Path]:
    """Write a report as JSON, Markdown and HTML, each file atomically.

    Args:
        rep: The report (:func:`make_report`).
        selection: The selection it was made with (its reason and warnings are shown), or None.
        json_path: Destination of report.json.
        markdown_path: Destination of the Markdown page.
        html_path: Destination of the HTML page.

    Returns:
        ``{"json": path, "markdown": path, "html": path}``.
    """
    from kfedge.fsutil import write_json_atomic, write_text_atomic

    return {
        "json": write_json_atomic(json_path, rep, sort_keys=False),
        "markdown": write_text_atomic(markdown_path, render_markdown(rep, selection)),
        "html": write_text_atomic(html_path, render_html(rep, selection)),
    }


def build_report(
    evaluations: Iterable[EvaluationLike],
    out_dir: str | Path,
    baseline: str | None = None,
    selection: dict[str, Any] | None = None,
    title: str = "kfedge report",
    target: str | None = None,
    timings: TimingsLike | None = None,
) -> dict[str, Path]:
    """Write report.json, report.md and report.html comparing every candidate with the baseline.

    Args:
        evaluations: As for :func:`make_report`.
        out_dir: Directory to write into (created).
        baseline: As for :func:`make_report`.
        selection: As for :func:`make_report`.
        title: Report title.
        target: Target profile name shown in the report.
        timings: As for :func:`make_report`.

    Returns:
        ``{"json": path, "markdown": path, "html": path}``.

    Raises:
        InvalidInputError: As :func:`make_report` (nothing is written then).
    """
    rep = make_report(evaluations, baseline, selection, title, target, timings)
    out = Path(out_dir)
    return write_report(rep, selection, out / "report.json", out / "report.md", out / "report.html")


def print_summary(report_json: dict[str, Any] | str | Path) -> str:
    """A plain-text table of a report for a terminal (report.json of any kfedge version).

    Args:
        report_json: The report dict, or the path of report.json.

    Returns:
        The text (no trailing newline).
    """
    rep = report_json
    if not isinstance(rep, dict):
        rep = json.loads(Path(rep).read_text())
    header = ["", "candidate", "technique", "fmt", "acc", "Δpts", "p50 ms", "vs base", "latency"]
    header += ["MB", "vs base", "goals"]
    table = [header]
    for r in rep["candidates"]:
        mark = "*" if r.get("selected") else ("b" if r.get("is_baseline") else "")
        name = r["name"] + (" (CPU)" if r.get("cpu_fallback") else "")
        table.append(
            [
                mark,
                name,
                r["technique"],
                r["format"],
                f"{r['accuracy']:.4f}",
                f"{r['accuracy_delta_pts']:+.2f}",
                p50_cell(r["latency_ms"], r.get("latency_on_target")),
                ratio_text(r.get("latency_ratio"), r.get("latency_ratio_ci")),
                r.get("latency_verdict") or "",
                mb(r["size_bytes"]),
                f"{r['size_ratio']:.2f}x" if r.get("size_ratio") is not None else "N/A",
                goals_cell(r),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(wd) for c, wd in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    ]
    lines.append(f"baseline: {rep['baseline']} (b)   threads: {rep.get('threads')}")
    lines.append(measurement_line(rep.get("measurement")))
    if (rep.get("provenance") or {}).get("note"):
        lines.append(f"{MARK} {rep['provenance']['note']}")
    sel = rep.get("selected")
    lines.append(f"selected: {sel} (*)" if sel else "selected: none")
    if rep.get("reason"):
        lines.append(f"reason: {rep['reason']}")
    return "\n".join(lines)


def _read_selection(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a selection JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{path} is not a selection JSON: expected an object, got {type(data).__name__}"
        )
    return data


def report_from_files(
    evaluation_files: list[str | Path],
    baseline_file: str | Path,
    selection_file: str | Path | None,
    json_path: str | Path,
    markdown_path: str | Path,
    html_path: str | Path,
    title: str = "kfedge report",
    target: str | None = None,
    timings_path: str | Path | None = None,
) -> dict[str, Any]:
    """Build the report from evaluation / selection files and write it where KFP wants it.

    This is what the KFP ``report`` component runs. The baseline evaluation is always part of
    the report; an evaluation in the list with the baseline's name is the same candidate.

    Args:
        evaluation_files: Evaluation JSON files of the candidates.
        baseline_file: Evaluation JSON of the baseline.
        selection_file: Selection JSON (from :func:`kfedge.select.select_from_files`), or None.
        json_path: Destination of report.json.
        markdown_path: Destination of the Markdown report.
        html_path: Destination of the HTML report.
        title: Report title.
        target: Target name shown in the report.
        timings_path: The benchmark step's side-by-side timings JSON: the report's latency
            figures (p50 with interval, p90 / p99, ratio to the baseline with interval and
            verdict) come from it, matched by name; None: the evaluations' single
            measurements.

    Returns:
        ``report`` (the report.json dict), ``metrics`` (scalars for a KFP Metrics artifact),
        ``confusion`` (``name``, ``classes``, ``matrix`` of the selected candidate, else the
        baseline) and ``report_metadata`` (``selected``, "" when none, ``baseline``, and where
        latency was measured: ``latency_measured_on``, ``latency_on_target``; for the
        report.json artifact).
    """
    base = load_evaluation(baseline_file)
    evaluations = [base] + [
        ev
        for ev in (load_evaluation(f) for f in evaluation_files if not read_evaluation_file(f))
        if ev.name != base.name
    ]  # failed candidates come with the selection (its ``failed``)
    selection = _read_selection(selection_file) if selection_file else None
    rep = make_report(evaluations, base.name, selection, title, target, timings_path)
    write_report(rep, selection, json_path, markdown_path, html_path)
    shown = rep["selected"] or base.name
    ev = next(e for e in evaluations if e.name == shown)
    row = next(r for r in rep["candidates"] if r["name"] == shown)
    metrics = {
        "candidates": float(len(rep["candidates"])),
        "passing": float(sum(r["passed_goals"] for r in rep["candidates"])),
        "deploy": float(rep["deploy"]),
        "selected_accuracy": row["accuracy"],
        "selected_accuracy_delta_pts": row["accuracy_delta_pts"],
        "selected_latency_p50_ms": float(row["latency_ms"]["p50"]),
        "selected_latency_ratio": float(row["latency_ratio"] or 0.0),
        "selected_size_mb": row["size_bytes"] / MB,
        "selected_size_ratio": float(row["size_ratio"] or 0.0),
        "baseline_accuracy": base.accuracy,
        "baseline_latency_p50_ms": base.latency_ms.p50,
        "baseline_size_mb": base.size_bytes / MB,
    }
    if row.get("latency_ratio_ci"):  # side-by-side timings: the ratio's interval too
        metrics["selected_latency_ratio_low"] = float(row["latency_ratio_ci"][0])
        metrics["selected_latency_ratio_high"] = float(row["latency_ratio_ci"][1])
    confusion = {
        "name": shown,
        "classes": [str(c) for c in ev.classes],
        "matrix": ev.confusion_matrix,
    }
    return {
        "report": rep,
        "metrics": metrics,
        "confusion": confusion,
        "report_metadata": {
            "selected": rep["selected"] or "",
            "baseline": rep["baseline"],
            "latency_measured_on": rep["provenance"]["measured_isa"] or "",
            "latency_on_target": rep["provenance"]["on_target"] is not False,
        },
    }
