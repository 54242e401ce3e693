"""The comparison report: report.json for machines, report.md and a self-contained report.html.

The HTML has no external scripts, styles, fonts or images (KFP shows it in a sandboxed iframe,
edge clusters are offline): inline CSS and SVG charts drawn here, every name escaped. The table
follows the seeds' shape (ARCHITECTURE.md §7): the baseline's figures next to each candidate's,
with deltas and ratios, plus one summary row original vs best PTQ vs best QAT.
"""

from __future__ import annotations

import datetime as _dt
import json
from html import escape
from pathlib import Path
from typing import Any

from kfedge.convert import write_atomic
from kfedge.errors import InvalidInputError
from kfedge.select import MB, _check_evaluations, find_baseline

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1d2433}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#5a6478;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
th,td{border:1px solid #d5dae3;padding:.25rem .5rem;text-align:right}
th{background:#f1f3f7}td.l,th.l{text-align:left}td.l:last-child{min-width:16rem}
tr.selected td{background:#e6f4ea;font-weight:600}tr.baseline td{background:#f5f5fb}
.fail{color:#b3261e}.ok{color:#1e7b34}
.reason{padding:.6rem .8rem;border-left:4px solid #1e7b34;background:#f3faf5}
.reason.none{border-color:#b3261e;background:#fdf3f2}
svg text{font-size:11px;fill:#1d2433}
"""


def _mb(n: float | int | None) -> str:
    return "N/A" if n is None else f"{n / MB:.3f}"


def pareto_front(points: list[dict[str, Any]] | list[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats (maximize accuracy, minimize latency).

    A point is dominated when another has accuracy >= and latency <=, strictly better in one.

    Args:
        points: ``(name, accuracy, latency_ms)`` tuples, or evaluation dicts.

    Returns:
        The front's names ordered by latency (fastest first).
    """
    pts: list[tuple[str, float, float]] = []
    for p in points:
        if isinstance(p, dict):
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


def _group(technique: str) -> str | None:
    t = technique.lower()
    if "qat" in t:
        return "QAT"
    if any(k in t for k in ("ptq", "int8", "fp16", "float16", "dynamic", "quant")):
        return "PTQ"
    return None


def _rows(
    evaluations: list[dict[str, Any]], base: dict[str, Any], selection: dict[str, Any] | None
) -> list[dict[str, Any]]:
    per = {c["name"]: c for c in (selection or {}).get("candidates", [])}
    bacc, bp50 = float(base["accuracy"]), float(base["latency_ms"]["p50"])
    bsize = int(base["size_bytes"])
    rows = []
    for ev in evaluations:
        lat = ev["latency_ms"]
        c = per.get(ev["name"], {})
        rows.append(
            {
                "name": ev["name"],
                "technique": ev.get("technique", "unknown"),
                "format": ev["format"],
                "parent": ev.get("parent"),
                "accuracy": float(ev["accuracy"]),
                "top5": ev.get("top5"),
                "accuracy_delta_pts": (float(ev["accuracy"]) - bacc) * 100,
                "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "mean", "runs")},
                "latency_ratio": float(lat["p50"]) / bp50 if bp50 > 0 else None,
                "throughput": ev.get("throughput", {}),
                "size_bytes": int(ev["size_bytes"]),
                "size_gzip_bytes": ev.get("size_gzip_bytes"),
                "size_ratio": int(ev["size_bytes"]) / bsize if bsize else None,
                "params_count": ev.get("params_count"),
                "sparsity": ev.get("sparsity"),
                "peak_rss_mb": ev.get("peak_rss_mb"),
                "threads": ev.get("threads"),
                "is_baseline": ev["name"] == base["name"],
                "selected": bool(selection) and ev["name"] == selection.get("selected"),
                "passed_goals": bool(c.get("passed", selection is None)),
                "failed_goals": list(c.get("failed_goals", [])),
            }
        )
    return rows


def _seeds_summary(rows: list[dict[str, Any]], ranking: list[str]) -> dict[str, Any]:
    base = next(r for r in rows if r["is_baseline"])
    order = {n: i for i, n in enumerate(ranking)}
    best: dict[str, dict[str, Any] | None] = {}
    for grp in ("PTQ", "QAT"):
        members = [r for r in rows if _group(r["technique"]) == grp and not r["is_baseline"]]
        members.sort(key=lambda r: (order.get(r["name"], len(order)), r["latency_ms"]["p50"]))
        best[grp] = members[0] if members else None
    optimized = [r for r in best.values() if r is not None]
    chosen = next((r for r in rows if r["selected"] and not r["is_baseline"]), None)
    size_opt = chosen or (min(optimized, key=lambda r: r["size_bytes"]) if optimized else None)
    return {
        "model": base["name"],
        "accuracy_original": base["accuracy"],
        "accuracy_ptq": best["PTQ"]["accuracy"] if best["PTQ"] else None,
        "accuracy_qat": best["QAT"]["accuracy"] if best["QAT"] else None,
        "latency_original_ms": base["latency_ms"]["p50"],
        "latency_ptq_ms": best["PTQ"]["latency_ms"]["p50"] if best["PTQ"] else None,
        "latency_qat_ms": best["QAT"]["latency_ms"]["p50"] if best["QAT"] else None,
        "size_original_bytes": base["size_bytes"],
        "size_optimized_bytes": size_opt["size_bytes"] if size_opt else None,
        "ptq": best["PTQ"]["name"] if best["PTQ"] else None,
        "qat": best["QAT"]["name"] if best["QAT"] else None,
        "optimized": size_opt["name"] if size_opt else None,
    }


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "N/A" if v is None else format(v, spec)


SEEDS_HEADER = [
    "Model",
    "Accuracy original",
    "Accuracy PTQ",
    "Accuracy QAT",
    "Latency original (ms)",
    "Latency PTQ",
    "Latency QAT",
    "Size original (MB)",
    "Size optimized (MB)",
]
TABLE_HEADER = [
    "Candidate",
    "Technique",
    "Format",
    "Accuracy original",
    "Accuracy",
    "Δ acc (pts)",
    "Latency original p50 (ms)",
    "Latency p50 (ms)",
    "p90",
    "p99",
    "Latency vs original",
    "Size original (MB)",
    "Size (MB)",
    "Size vs original",
    "Gzip (MB)",
    "Sparsity",
    "Goals",
]


def _seeds_cells(s: dict[str, Any]) -> list[str]:
    return [
        s["model"],
        _fmt(s["accuracy_original"]),
        _fmt(s["accuracy_ptq"]),
        _fmt(s["accuracy_qat"]),
        _fmt(s["latency_original_ms"], ".3f"),
        _fmt(s["latency_ptq_ms"], ".3f"),
        _fmt(s["latency_qat_ms"], ".3f"),
        _mb(s["size_original_bytes"]),
        _mb(s["size_optimized_bytes"]),
    ]


def _row_cells(r: dict[str, Any], base: dict[str, Any]) -> list[str]:
    goals = "ok" if r["passed_goals"] else "FAIL: " + "; ".join(r["failed_goals"])
    mark = " (selected)" if r["selected"] else ""
    mark += " (baseline)" if r["is_baseline"] else ""
    return [
        r["name"] + mark,
        r["technique"],
        r["format"],
        _fmt(base["accuracy"]),
        _fmt(r["accuracy"]),
        f"{r['accuracy_delta_pts']:+.2f}",
        _fmt(base["latency_ms"]["p50"], ".3f"),
        _fmt(r["latency_ms"]["p50"], ".3f"),
        _fmt(r["latency_ms"]["p90"], ".3f"),
        _fmt(r["latency_ms"]["p99"], ".3f"),
        _fmt(r["latency_ratio"], ".2f") + "x",
        _mb(base["size_bytes"]),
        _mb(r["size_bytes"]),
        _fmt(r["size_ratio"], ".2f") + "x",
        _mb(r["size_gzip_bytes"]),
        _fmt(r["sparsity"], ".3f"),
        goals,
    ]


def _md_escape(s: str) -> str:
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(rep: dict[str, Any]) -> str:
    rows, base = rep["candidates"], rep["_base_row"]
    sel = rep["selection"]
    parts = [
        f"# {_md_escape(rep['title'])}",
        "",
        f"Baseline: **{_md_escape(rep['baseline'])}** · target: {rep['target'] or 'n/a'} · "
        f"threads: {rep['threads']} · machine: {rep['machine'].get('arch', '?')} "
        f"{_md_escape(str(rep['machine'].get('cpu', '')))} ({rep['machine'].get('cpu_count')} "
        f"cores) · {rep['created']}",
        "",
        "## Selection",
        "",
        f"**Selected: {_md_escape(rep['selected'] or 'none')}** — "
        f"{_md_escape(sel['reason'] if sel else 'no selection was made')}",
        "",
    ]
    if rep["goals"]:
        goals = {k: v for k, v in rep["goals"].items() if v is not None}
        parts += [f"Goals: `{json.dumps(goals, sort_keys=True)}`", ""]
    parts += [
        "## Summary (original vs best PTQ vs best QAT)",
        "",
        _md_table(SEEDS_HEADER, [_seeds_cells(rep["summary"])]),
        "",
        "## Candidates",
        "",
        "Latency: p50/p90/p99 at batch 1, warm-up excluded, each candidate timed in its own "
        "process. Δ acc in percentage points against the baseline; ratios are candidate / "
        "baseline (below 1x is faster / smaller). 1 MB = 1,000,000 bytes.",
        "",
        _md_table(TABLE_HEADER, [_row_cells(r, base) for r in rows]),
        "",
    ]
    failed = [r for r in rows if r["failed_goals"]]
    if failed:
        parts += ["## Failed goals", ""]
        parts += [f"- **{_md_escape(r['name'])}**: {'; '.join(r['failed_goals'])}" for r in failed]
        parts.append("")
    if sel and sel.get("warnings"):
        parts += ["## Warnings", ""] + [f"- {_md_escape(w)}" for w in sel["warnings"]] + [""]
    return "\n".join(parts)


# -- SVG -------------------------------------------------------------------------------------
def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def _chart_svg(rows: list[dict[str, Any]], front: list[str]) -> str:
    w, h, ml, mr, mt, mb = 760, 420, 64, 150, 16, 44
    lats = [float(r["latency_ms"]["p50"]) for r in rows]
    accs = [float(r["accuracy"]) for r in rows]
    lx0, lx1 = 0.0, max(lats) * 1.1 or 1.0
    ay0, ay1 = min(accs), max(accs)
    pad = max(0.005, (ay1 - ay0) * 0.15)
    ay0, ay1 = max(0.0, ay0 - pad), min(1.0, ay1 + pad)

    def xy(r: dict[str, Any]) -> tuple[float, float]:
        return (
            _scale(float(r["latency_ms"]["p50"]), lx0, lx1, ml, w - mr),
            _scale(float(r["accuracy"]), ay0, ay1, h - mb, mt),
        )

    out = [
        f'<svg class="chart" role="img" aria-label="Accuracy against latency p50" '
        f'xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f'<rect x="{ml}" y="{mt}" width="{w - ml - mr}" height="{h - mt - mb}" fill="#fafbfd" '
        'stroke="#d5dae3"/>',
    ]
    for i in range(5):  # grid + tick labels
        xv = lx0 + (lx1 - lx0) * i / 4
        yv = ay0 + (ay1 - ay0) * i / 4
        x = _scale(xv, lx0, lx1, ml, w - mr)
        y = _scale(yv, ay0, ay1, h - mb, mt)
        out.append(
            f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{h - mb}" stroke="#eceff4"/>'
            f'<text x="{x:.1f}" y="{h - mb + 14}" text-anchor="middle">{xv:.3g}</text>'
            f'<line x1="{ml}" y1="{y:.1f}" x2="{w - mr}" y2="{y:.1f}" stroke="#eceff4"/>'
            f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{yv:.3f}</text>'
        )
    out.append(
        f'<text x="{(ml + w - mr) / 2}" y="{h - 8}" text-anchor="middle">latency p50 (ms)</text>'
        f'<text x="14" y="{(mt + h - mb) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(mt + h - mb) / 2})">top-1 accuracy</text>'
    )
    by_name = {r["name"]: r for r in rows}
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(by_name[n]) for n in front))
    out.append(
        f'<polyline class="pareto" points="{pts}" fill="none" stroke="#1a73e8" '
        'stroke-width="1.5" stroke-dasharray="5 3"/>'
    )
    placed: list[tuple[float, float, float, float]] = []  # label boxes, to avoid overlaps

    def label_at(
        x: float, y: float, text: str, force: bool = False
    ) -> tuple[float, float, str] | None:
        tw, th = 6.2 * len(text), 11.0
        spots = [
            (8, -7, "start"), (8, 15, "start"), (-8, -7, "end"), (-8, 15, "end"),
            (8, 4, "start"), (-8, 4, "end"), (8, -19, "start"), (8, 27, "start"),
            (-8, -19, "end"), (-8, 27, "end"),
        ]  # fmt: skip
        for dx, dy, anchor in spots:
            x0 = x + dx if anchor == "start" else x + dx - tw
            box = (x0, y + dy - th + 2, x0 + tw, y + dy + 2)
            inside = ml <= box[0] and box[2] <= w - mr and mt <= box[1] and box[3] <= h - mb
            clash = any(
                not (box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1])
                for b in placed
            )
            if inside and not clash:
                placed.append(box)
                return x + dx, y + dy, anchor
        if force:  # the selected candidate and the baseline are always named
            return (x + 8, y - 7, "start") if x + 8 + tw <= w - mr else (x - 8, y - 7, "end")
        return None

    # points first (their own boxes block labels), then labels: front, baseline, selected, rest
    for r in rows:
        x, y = xy(r)
        placed.append((x - 6, y - 6, x + 6, y + 6))
    order = sorted(
        rows, key=lambda r: (not r["selected"], not r["is_baseline"], r["name"] not in front)
    )
    labels: dict[str, str] = {}
    for r in order:
        x, y = xy(r)
        spot = label_at(x, y, r["name"], force=r["selected"] or r["is_baseline"])
        if spot is not None:
            lx_, ly_, anchor = spot
            labels[r["name"]] = (
                f'<text x="{lx_:.1f}" y="{ly_:.1f}" text-anchor="{anchor}">'
                f"{escape(r['name'])}</text>"
            )
    for r in rows:
        x, y = xy(r)
        name = escape(r["name"])
        title = (
            f"<title>{name}: accuracy {r['accuracy']:.4f}, p50 "
            f"{float(r['latency_ms']['p50']):.3f} ms</title>"
        )
        color = "#1a73e8" if r["name"] in front else "#8a94a6"
        if r["is_baseline"]:
            shape = (
                f'<rect class="point baseline" x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" '
                f'height="10" fill="#ffffff" stroke="#3c4043" stroke-width="2">{title}</rect>'
            )
        else:
            shape = (
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}">'
                f"{title}</circle>"
            )
        if r["selected"]:
            shape += (
                f'<circle class="selected" cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" '
                'stroke="#1e7b34" stroke-width="2.5"/>'
            )
        out.append(shape + labels.get(r["name"], ""))
    lx = w - mr + 12
    out.append(
        f'<rect x="{lx}" y="{mt + 4}" width="10" height="10" fill="#fff" stroke="#3c4043" '
        f'stroke-width="2"/><text x="{lx + 16}" y="{mt + 13}">baseline</text>'
        f'<circle cx="{lx + 5}" cy="{mt + 29}" r="5" fill="#1a73e8"/>'
        f'<text x="{lx + 16}" y="{mt + 33}">Pareto front</text>'
        f'<circle cx="{lx + 5}" cy="{mt + 49}" r="5" fill="#8a94a6"/>'
        f'<text x="{lx + 16}" y="{mt + 53}">dominated</text>'
        f'<circle cx="{lx + 5}" cy="{mt + 69}" r="8" fill="none" stroke="#1e7b34" '
        f'stroke-width="2.5"/><text x="{lx + 16}" y="{mt + 73}">selected</text>'
    )
    out.append("</svg>")
    return "".join(out)


def _size_svg(rows: list[dict[str, Any]]) -> str:
    bar, gap, ml, w = 10, 10, 170, 640
    h = 24 + len(rows) * (2 * bar + gap)
    top = max(max(r["size_bytes"], r["size_gzip_bytes"] or 0) for r in rows) or 1
    out = [
        f'<svg class="sizes" role="img" aria-label="Model sizes" '
        f'xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f'<rect x="{ml}" y="2" width="10" height="8" fill="#1a73e8"/>'
        f'<text x="{ml + 14}" y="10">raw</text>'
        f'<rect x="{ml + 50}" y="2" width="10" height="8" fill="#7cb342"/>'
        f'<text x="{ml + 64}" y="10">gzip -9</text>',
    ]
    for i, r in enumerate(rows):
        y = 20 + i * (2 * bar + gap)
        out.append(
            f'<text x="{ml - 6}" y="{y + bar + 4}" text-anchor="end">{escape(r["name"])}</text>'
        )
        for j, (key, color) in enumerate(
            (("size_bytes", "#1a73e8"), ("size_gzip_bytes", "#7cb342"))
        ):
            v = r[key] or 0
            bw = (w - ml - 90) * v / top
            yy = y + j * bar
            out.append(
                f'<rect class="bar" x="{ml}" y="{yy}" width="{bw:.1f}" height="{bar - 1}" '
                f'fill="{color}"/><text x="{ml + bw + 4:.1f}" y="{yy + 8}">{_mb(v)} MB</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _html_table(header: list[str], rows: list[list[str]], classes: list[str], tid: str) -> str:
    head = "".join(
        f'<th class="l">{escape(h)}</th>' if i < 3 or h == "Goals" else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for cells, cls in zip(rows, classes, strict=True):
        tds = "".join(
            f'<td class="l{" fail" if c.startswith("FAIL") else ""}">{escape(c)}</td>'
            if i < 3 or header[i] == "Goals"
            else f"<td>{escape(c)}</td>"
            for i, c in enumerate(cells)
        )
        body.append(f'<tr class="{cls}">{tds}</tr>')
    return f'<table id="{tid}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _html(rep: dict[str, Any]) -> str:
    rows, base, sel = rep["candidates"], rep["_base_row"], rep["selection"]
    m = rep["machine"]
    classes = [
        " ".join(
            c
            for c in ("selected" if r["selected"] else "", "baseline" if r["is_baseline"] else "")
            if c
        )
        for r in rows
    ]
    reason_cls = "reason" if rep["selected"] else "reason none"
    failed = [r for r in rows if r["failed_goals"]]
    goals = {k: v for k, v in (rep["goals"] or {}).items() if v is not None}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(rep['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(rep['title'])}</h1>",
        f'<p class="meta">Baseline <b>{escape(rep["baseline"])}</b> · target '
        f"{escape(str(rep['target'] or 'n/a'))} · threads {escape(str(rep['threads']))} · "
        f"{escape(str(m.get('arch', '?')))} {escape(str(m.get('cpu', '')))} "
        f"({escape(str(m.get('cpu_count')))} cores) · {escape(rep['created'])}</p>",
        "<h2>Selection</h2>",
        f'<p class="{reason_cls}" id="selection"><b>Selected: '
        f"{escape(rep['selected'] or 'none')}</b> — "
        f"{escape(sel['reason'] if sel else 'no selection was made')}</p>",
    ]
    if goals:
        parts.append(f"<p>Goals: <code>{escape(json.dumps(goals, sort_keys=True))}</code></p>")
    parts += [
        "<h2>Accuracy against latency</h2>",
        _chart_svg(rows, rep["pareto_front"]),
        "<h2>Summary (original vs best PTQ vs best QAT)</h2>",
        _html_table(SEEDS_HEADER, [_seeds_cells(rep["summary"])], [""], "summary"),
        "<h2>Candidates</h2>",
        '<p class="meta">Latency: batch 1, warm-up excluded, each candidate timed in its own '
        "process. Δ acc in percentage points against the baseline; ratios are candidate / "
        "baseline. 1 MB = 1,000,000 bytes.</p>",
        _html_table(TABLE_HEADER, [_row_cells(r, base) for r in rows], classes, "candidates"),
        "<h2>Size</h2>",
        _size_svg(rows),
    ]
    if failed:
        parts.append('<h2>Failed goals</h2><ul id="failed-goals">')
        parts += [
            f"<li><b>{escape(r['name'])}</b>: {escape('; '.join(r['failed_goals']))}</li>"
            for r in failed
        ]
        parts.append("</ul>")
    if sel and sel.get("warnings"):
        parts.append("<h2>Warnings</h2><ul>")
        parts += [f"<li>{escape(w)}</li>" for w in sel["warnings"]]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(
    evaluations: list[dict[str, Any]],
    out_dir: str | Path,
    baseline: str | None = None,
    selection: dict[str, Any] | None = None,
    title: str = "kfedge report",
    target: str | None = None,
) -> dict[str, Path]:
    """Write report.json, report.md and report.html comparing every candidate with the baseline.

    Args:
        evaluations: Evaluation results, baseline included.
        out_dir: Directory to write into (created).
        baseline: Name of the baseline (default: the selection's, else found by
            :func:`kfedge.select.find_baseline`).
        selection: The result of :func:`kfedge.select.select`, if a selection was made.
        title: Report title.
        target: Target profile name shown in the report.

    Returns:
        ``{"json": path, "markdown": path, "html": path}``.

    Raises:
        InvalidInputError: No evaluations, duplicate names, or a selection naming unknown
            candidates.
    """
    _check_evaluations(evaluations)
    names = {e["name"] for e in evaluations}
    if selection is not None:
        unknown = {c["name"] for c in selection.get("candidates", [])} - names
        if selection.get("selected") and selection["selected"] not in names:
            unknown.add(selection["selected"])
        if unknown:
            raise InvalidInputError(
                f"the selection names candidates without an evaluation: {sorted(unknown)}"
            )
    base = find_baseline(evaluations, baseline or (selection or {}).get("baseline"))
    rows = _rows(evaluations, base, selection)
    base_row = next(r for r in rows if r["is_baseline"])
    ranking = list((selection or {}).get("ranking", []))
    threads = sorted({e.get("threads") for e in evaluations}, key=str)
    machines = []
    for e in evaluations:
        if e.get("machine") and e["machine"] not in machines:
            machines.append(e["machine"])
    rep: dict[str, Any] = {
        "title": title,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "target": target,
        "baseline": base["name"],
        "selected": (selection or {}).get("selected"),
        "deploy": bool((selection or {}).get("deploy", False)),
        "reason": (selection or {}).get("reason"),
        "ranking": ranking,
        "goals": (selection or {}).get("goals"),
        "threads": threads[0] if len(threads) == 1 else threads,
        "machine": machines[0] if len(machines) == 1 else {"machines": machines},
        "pareto_front": pareto_front(rows),
        "summary": _seeds_summary(rows, ranking),
        "candidates": rows,
        "warnings": list((selection or {}).get("warnings", [])),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    view = {**rep, "selection": selection, "_base_row": base_row}
    if "machines" in rep["machine"]:
        view["machine"] = {"arch": "several machines", "cpu": "", "cpu_count": "?"}
    md = _markdown(view)
    html = _html(view)
    paths = {
        "json": write_atomic(out / "report.json", json.dumps(rep, indent=2).encode()),
        "markdown": write_atomic(out / "report.md", md.encode()),
        "html": write_atomic(out / "report.html", html.encode()),
    }
    return paths


def print_summary(report_json: dict[str, Any] | str | Path) -> str:
    """A plain-text table of a report for a terminal.

    Args:
        report_json: The report dict, or the path of report.json.

    Returns:
        The text (no trailing newline).
    """
    rep = report_json
    if not isinstance(rep, dict):
        rep = json.loads(Path(rep).read_text())
    header = [
        "",
        "candidate",
        "technique",
        "fmt",
        "acc",
        "Δpts",
        "p50 ms",
        "vs base",
        "MB",
        "vs base",
        "goals",
    ]
    table = [header]
    for r in rep["candidates"]:
        mark = "*" if r.get("selected") else ("b" if r.get("is_baseline") else "")
        table.append(
            [
                mark,
                r["name"],
                r["technique"],
                r["format"],
                f"{r['accuracy']:.4f}",
                f"{r['accuracy_delta_pts']:+.2f}",
                f"{r['latency_ms']['p50']:.3f}",
                f"{r['latency_ratio']:.2f}x" if r.get("latency_ratio") is not None else "N/A",
                _mb(r["size_bytes"]),
                f"{r['size_ratio']:.2f}x" if r.get("size_ratio") is not None else "N/A",
                "ok" if r["passed_goals"] else "FAIL: " + "; ".join(r["failed_goals"]),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(wd) for c, wd in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    ]
    lines.append(f"baseline: {rep['baseline']} (b)   threads: {rep.get('threads')}")
    sel = rep.get("selected")
    lines.append(f"selected: {sel} (*)" if sel else "selected: none")
    if rep.get("reason"):
        lines.append(f"reason: {rep['reason']}")
    return "\n".join(lines)


def report_from_files(
    evaluation_files: list[str | Path],
    baseline_file: str | Path,
    selection_file: str | Path | None,
    json_path: str | Path,
    markdown_path: str | Path,
    html_path: str | Path,
    title: str = "kfedge report",
    target: str | None = None,
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

    Returns:
        ``report`` (the report.json dict), ``metrics`` (scalars for a KFP Metrics artifact)
        and ``confusion`` (``name``, ``classes``, ``matrix`` of the selected candidate, else
        the baseline).
    """
    import shutil
    import tempfile

    from kfedge.evaluate import load_evaluation

    base = load_evaluation(baseline_file)
    evaluations = [base] + [
        ev for ev in (load_evaluation(f) for f in evaluation_files) if ev["name"] != base["name"]
    ]
    selection = None
    if selection_file:
        try:
            selection = json.loads(Path(selection_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{selection_file} is not a selection JSON: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="kfedge-report-") as tmp:
        paths = build_report(
            evaluations,
            tmp,
            baseline=base["name"],
            selection=selection,
            title=title,
            target=target,
        )
        rep = json.loads(paths["json"].read_text())
        for key, dest in (("json", json_path), ("markdown", markdown_path), ("html", html_path)):
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(paths[key], dest)
    shown = rep["selected"] or base["name"]
    ev = next(e for e in evaluations if e["name"] == shown)
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
        "baseline_accuracy": float(base["accuracy"]),
        "baseline_latency_p50_ms": float(base["latency_ms"]["p50"]),
        "baseline_size_mb": int(base["size_bytes"]) / MB,
    }
    confusion = {
        "name": shown,
        "classes": [str(c) for c in ev.get("classes", [])],
        "matrix": ev.get("confusion_matrix", []),
    }
    return {"report": rep, "metrics": metrics, "confusion": confusion}
