"""The report as a self-contained HTML page (report.html): an SVG chart, the tables, the goals.

The page has no external scripts, styles, fonts or images (KFP shows it in a sandboxed iframe,
edge clusters are offline): inline CSS and SVG charts drawn here, every name escaped.
"""

from __future__ import annotations

import json
from html import escape
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
    mb,
    notes,
    reason_text,
    row_cells,
    seeds_cells,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1d2433}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#5a6478;font-size:.85rem}
.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:.5rem .8rem}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
th,td{border:1px solid #d5dae3;padding:.25rem .5rem;text-align:right}
th{background:#f1f3f7}td.l,th.l{text-align:left}td.l:last-child{min-width:16rem}
tr.selected td{background:#e6f4ea;font-weight:600}tr.baseline td{background:#f5f5fb}
.fail{color:#b3261e}.ok{color:#1e7b34}
.reason{padding:.6rem .8rem;border-left:4px solid #1e7b34;background:#f3faf5}
.reason.none{border-color:#b3261e;background:#fdf3f2}
svg text{font-size:11px;fill:#1d2433}
"""


# -- SVG -------------------------------------------------------------------------------------
def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def _chart_svg(rows: list[dict[str, Any]], front: list[str]) -> str:
    w, h, ml, mr, mt, mb = 760, 420, 64, 150, 16, 44
    lats = [float((r["latency_ms"].get("p50_ci") or [0, r["latency_ms"]["p50"]])[1]) for r in rows]
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
    for r in rows:  # error bars: the p50's 95 % interval over rounds
        ci = r["latency_ms"].get("p50_ci")
        if ci:
            _, y = xy(r)
            x0 = _scale(float(ci[0]), lx0, lx1, ml, w - mr)
            x1 = _scale(float(ci[1]), lx0, lx1, ml, w - mr)
            out.append(
                f'<path class="errorbar" d="M{x0:.1f} {y:.1f}H{x1:.1f}M{x0:.1f} {y - 4:.1f}'
                f'V{y + 4:.1f}M{x1:.1f} {y - 4:.1f}V{y + 4:.1f}" stroke="#3c4043" '
                'stroke-width="1.2" fill="none"/>'
            )
    for r in rows:
        x, y = xy(r)
        name = escape(r["name"])
        ci = r["latency_ms"].get("p50_ci")
        title = (
            f"<title>{name}: accuracy {r['accuracy']:.4f}, p50 "
            f"{float(r['latency_ms']['p50']):.3f} ms"
            + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            + (" (CPU)" if r.get("cpu_fallback") else "")
            + "</title>"
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
                f'fill="{color}"/><text x="{ml + bw + 4:.1f}" y="{yy + 8}">{mb(v)} MB</text>'
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


def render_html(rep: dict[str, Any], selection: dict[str, Any] | None) -> str:
    """The HTML page of a report (arguments as :func:`kfedge.report_md.render_markdown`)."""
    rows, base, sel = rep["candidates"], base_row(rep), selection
    m = machine_of(rep)
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
        f'<p class="meta" id="measurement">{escape(measurement_line(rep.get("measurement")))}</p>',
        _provenance_html(rep),
        "<h2>Selection</h2>",
        f'<p class="{reason_cls}" id="selection"><b>Selected: '
        f"{escape(rep['selected'] or 'none')}</b> — "
        f"{escape(reason_text(rep, sel))}</p>",
    ]
    evidence = (sel or {}).get("evidence") or []
    if evidence:
        cells = [evidence_cells(e) for e in evidence]
        parts.append(_html_table(EVIDENCE_HEADER, cells, [""] * len(cells), "evidence"))
    if goals:
        parts.append(f"<p>Goals: <code>{escape(json.dumps(goals, sort_keys=True))}</code></p>")
    parts += [
        "<h2>Accuracy against latency</h2>",
        _chart_svg(rows, rep["pareto_front"]),
        "<h2>Summary (original vs best PTQ vs best QAT)</h2>",
        _html_table(SEEDS_HEADER, [seeds_cells(rep["summary"])], [""], "summary"),
        "<h2>Candidates</h2>",
        '<p class="meta">Latency: batch 1, warm-up excluded, each candidate timed in its own '
        "process; error bars: the p50's interval (its coverage: the line at the top). "
        f"{escape(TABLE_NOTE)}</p>",
        _html_table(TABLE_HEADER, [row_cells(r, base) for r in rows], classes, "candidates"),
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
    for i, (title, lines) in enumerate(notes(rep).items()):
        parts.append(f'<h2>{escape(title)}</h2><ul id="notes-{i}">')
        parts += [f"<li>{escape(x)}</li>" for x in lines]
        parts.append("</ul>")
    warnings = rep.get("warnings") or (sel or {}).get("warnings") or []
    if warnings:
        parts.append('<h2>Warnings</h2><ul id="warnings">')
        parts += [f"<li>{escape(w)}</li>" for w in warnings]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _provenance_html(rep: dict[str, Any]) -> str:
    """The warning that latency was not measured on the target's CPU ("" when it was)."""
    note = (rep.get("provenance") or {}).get("note")
    if not note:
        return ""
    return (
        f'<p class="warn" id="provenance"><strong>{MARK} {escape(note)}</strong> '
        f"{escape(selection_caveat(rep))}</p>"
    )
