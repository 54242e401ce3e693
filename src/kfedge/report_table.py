"""The report's tables as text cells: the seeds' summary row and one row per candidate.

Shared by the Markdown page (:mod:`kfedge.report_md`), the HTML page (:mod:`kfedge.report_html`)
and the terminal summary (:func:`kfedge.report.print_summary`), so the three show the same
figures formatted the same way. The table follows the seeds' shape: the baseline's figures next
to each candidate's, with deltas and ratios, plus one summary row original vs best PTQ vs best
QAT; measured figures carry their intervals where the report has them (p50, latency ratio
(simultaneous 95 %), accuracy) and the verdict of the latency comparison. 1 MB = 1,000,000 bytes.
"""

from __future__ import annotations

from typing import Any

from kfedge.compare import ratio_text, runtime_text
from kfedge.evaluation import MB
from kfedge.provenance import MARK

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
    "Accuracy [95% CI]",
    "Δ acc (pts)",
    "McNemar p",
    "Latency original p50 (ms)",
    "Latency p50 [CI] (ms)",
    "p90",
    "p99",
    "Latency vs original [simultaneous 95% CI]",
    "Verdict",
    "Size original (MB)",
    "Size (MB)",
    "Size vs original",
    "Gzip (MB)",
    "Sparsity",
    "Goals",
]
#: What the table's interval columns mean (printed under it on both pages).
TABLE_NOTE = (
    "Δ acc in percentage points against the baseline; accuracy intervals are Wilson 95 % "
    "intervals; McNemar p: the paired exact test against the baseline on the same samples "
    "(small p: the accuracies really differ; +a/-b: samples only the candidate / only the "
    "baseline got right). Ratios are candidate / baseline (below 1x is "
    "faster / smaller); their intervals are simultaneous: all of them cover at once with 95 % "
    "(each is wider the more candidates are compared), and the p50 intervals have the coverage "
    "the measurement line states. Verdict: faster or slower only when the ratio's interval "
    "lies wholly below or above 1 (and beyond the tie threshold), tie otherwise; (CPU): the "
    "target's "
    "accelerator was absent and the CPU ran it. Format: the model format and the precision "
    "its runtime computed float tensors in (f32 unless a technique asks for bf16 / f16). "
    f"{MARK}: measured on a machine that is not the target's CPU class (see the note at the "
    "top). 1 MB = 1,000,000 bytes."
)


def mb(n: float | int | None) -> str:
    """Bytes as MB with three decimals ("N/A" for None)."""
    return "N/A" if n is None else f"{n / MB:.3f}"


def fmt(v: Any, spec: str = ".4f") -> str:
    """A number in ``spec`` format ("N/A" for None)."""
    return "N/A" if v is None else format(v, spec)


def goals_cell(row: dict[str, Any]) -> str:
    """``ok``, or ``FAIL:`` and the failed goals."""
    return "ok" if row["passed_goals"] else "FAIL: " + "; ".join(row["failed_goals"])


def seeds_cells(s: dict[str, Any]) -> list[str]:
    """The cells of the summary row (:data:`SEEDS_HEADER`) of a report's ``summary``."""
    return [
        s["model"],
        fmt(s["accuracy_original"]),
        fmt(s["accuracy_ptq"]),
        fmt(s["accuracy_qat"]),
        fmt(s["latency_original_ms"], ".3f"),
        fmt(s["latency_ptq_ms"], ".3f"),
        fmt(s["latency_qat_ms"], ".3f"),
        mb(s["size_original_bytes"]),
        mb(s["size_optimized_bytes"]),
    ]


def ms_cell(value: float | None, on_target: bool | None = True) -> str:
    """Milliseconds with three decimals, ``‡`` after it when measured off the target.

    ``on_target`` False: a machine that is not the target's CPU class measured it (the
    report's provenance note says where).
    """
    return fmt(value, ".3f") + (f" {MARK}" if on_target is False else "")


def p50_cell(lat: dict[str, Any], on_target: bool | None = True) -> str:
    """``4.500 [4.410, 4.620]``: the p50 with its interval when there is one (``‡``: off target)."""
    ci = lat.get("p50_ci")
    interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return fmt(lat.get("p50"), ".3f") + interval + (f" {MARK}" if on_target is False else "")


def accuracy_cell(r: dict[str, Any]) -> str:
    """``0.9880 [0.9312, 0.9979]``: accuracy with its Wilson interval when known."""
    ci = r.get("accuracy_ci")
    return fmt(r["accuracy"]) + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def mcnemar_cell(r: dict[str, Any]) -> str:
    """McNemar's p against the baseline, with the discordant counts (``0.031 (+1/-6)``)."""
    t = r.get("mcnemar")
    if not t:
        return "N/A"
    return f"{t['p_value']:.3g} (+{t['a_only']}/-{t['b_only']})"


def name_cell(r: dict[str, Any]) -> str:
    """The candidate's name with its marks: selected, baseline, CPU (accelerator absent)."""
    mark = " (selected)" if r["selected"] else ""
    mark += " (baseline)" if r["is_baseline"] else ""
    mark += " (CPU)" if r.get("cpu_fallback") else ""
    return r["name"] + mark


def format_cell(r: dict[str, Any]) -> str:
    """The format and the precision its runtime computed float tensors in (``onnx, f32``)."""
    precision = (r.get("runtime") or {}).get("precision")
    return f"{r['format']}, {precision}" if precision else r["format"]


def row_cells(r: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """The cells (:data:`TABLE_HEADER`) of one candidate row next to the baseline's row."""
    return [
        name_cell(r),
        r["technique"],
        format_cell(r),
        fmt(base["accuracy"]),
        accuracy_cell(r),
        f"{r['accuracy_delta_pts']:+.2f}",
        mcnemar_cell(r),
        ms_cell(base["latency_ms"]["p50"], r.get("latency_on_target")),
        p50_cell(r["latency_ms"], r.get("latency_on_target")),
        ms_cell(r["latency_ms"]["p90"], r.get("latency_on_target")),
        ms_cell(r["latency_ms"]["p99"], r.get("latency_on_target")),
        ratio_text(r.get("latency_ratio"), r.get("latency_ratio_ci")),
        r.get("latency_verdict") or "N/A",
        mb(base["size_bytes"]),
        mb(r["size_bytes"]),
        fmt(r["size_ratio"], ".2f") + "x",
        mb(r["size_gzip_bytes"]),
        fmt(r["sparsity"], ".3f"),
        goals_cell(r),
    ]


def notes(rep: dict[str, Any]) -> dict[str, list[str]]:
    """The report's per-candidate notes, by section title (empty sections left out).

    ``Failed candidates`` (a technique or evaluation that raised, with its one-line reason),
    ``Technique warnings`` (what a technique did not do as asked, e.g. ORT's pre-processing),
    ``Not timed side by side`` (the benchmark's reason), ``INT8 settings and this node's
    ISA`` (ONNX Runtime INT8 candidates), ``CPU instead of the accelerator``.
    """
    rows = rep["candidates"]
    out = {
        "Failed candidates": [
            f"{f['name']} ({f['technique']}): failed in {f['stage']}: {f['reason']}; the run "
            "went on without it"
            for f in rep.get("failed") or []
        ],
        "Technique warnings": [
            f"{r['name']}: {w}" for r in rows for w in r.get("technique_warnings") or []
        ],
        "Not timed side by side": [
            f"{r['name']}: {r['timing_skipped']} (its latency is the evaluation's own)"
            for r in rows
            if r.get("timing_skipped")
        ],
        "INT8 settings and this node's ISA": [
            f"{r['name']}: {r['int8_isa']['text']}" for r in rows if r.get("int8_isa")
        ],
        "CPU instead of the accelerator": [
            f"{r['name']}: the target's accelerator was absent and the profile allows CPU "
            f"fallback; every figure of it is the CPU's ({runtime_text(r.get('runtime') or {})})"
            for r in rows
            if r.get("cpu_fallback")
        ],
    }
    return {k: v for k, v in out.items() if v}


def base_row(rep: dict[str, Any]) -> dict[str, Any]:
    """The baseline's row of a report."""
    return next(r for r in rep["candidates"] if r["is_baseline"])


def machine_of(rep: dict[str, Any]) -> dict[str, Any]:
    """The report's machine for the page header (a placeholder when several measured)."""
    m = rep["machine"] or {}
    if "machines" in m:
        return {"arch": "several machines", "cpu": "", "cpu_count": "?"}
    return m or {"arch": "not recorded", "cpu": "", "cpu_count": "?"}


#: The selection's evidence table: every other candidate against the selected one.
EVIDENCE_HEADER = [
    "Candidate",
    "vs selected",
    "Verdict",
    "Δ acc (pts)",
    "McNemar p",
    "Size (MB)",
    "Not chosen because",
]


def evidence_cells(row: dict[str, Any]) -> list[str]:
    """One row of the evidence table (:func:`kfedge.select_reason.selection_reason`)."""
    p = row.get("mcnemar_p")
    return [
        row["name"],
        row.get("vs_selected") or "N/A",
        row.get("verdict") or "N/A",
        f"{row['accuracy_pts']:+.1f}",
        "N/A" if p is None else f"{p:.2g}",
        f"{row['size_mb']:.3f}",
        row.get("why") or "",
    ]


def reason_text(rep: dict[str, Any], selection: dict[str, Any] | None) -> str:
    """The selection's reason after "Selected: name —" (its own "Selected name, " dropped)."""
    if not selection:
        return "no selection was made"
    reason = str(selection.get("reason") or "")
    prefix = f"Selected {rep.get('selected')}, "
    return reason[len(prefix) :] if reason.startswith(prefix) else reason
