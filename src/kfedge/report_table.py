"""The report's tables as text cells: the seeds' summary row and one row per candidate.

Shared by the Markdown page (:mod:`kfedge.report_md`), the HTML page (:mod:`kfedge.report_html`)
and the terminal summary (:func:`kfedge.report.print_summary`), so the three show the same
figures formatted the same way. The table follows the seeds' shape: the baseline's figures next
to each candidate's, with deltas and ratios, plus one summary row original vs best PTQ vs best
QAT. 1 MB = 1,000,000 bytes.
"""

from __future__ import annotations

from typing import Any

from kfedge.evaluation import MB

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


def row_cells(r: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """The cells (:data:`TABLE_HEADER`) of one candidate row next to the baseline's row."""
    mark = " (selected)" if r["selected"] else ""
    mark += " (baseline)" if r["is_baseline"] else ""
    return [
        r["name"] + mark,
        r["technique"],
        r["format"],
        fmt(base["accuracy"]),
        fmt(r["accuracy"]),
        f"{r['accuracy_delta_pts']:+.2f}",
        fmt(base["latency_ms"]["p50"], ".3f"),
        fmt(r["latency_ms"]["p50"], ".3f"),
        fmt(r["latency_ms"]["p90"], ".3f"),
        fmt(r["latency_ms"]["p99"], ".3f"),
        fmt(r["latency_ratio"], ".2f") + "x",
        mb(base["size_bytes"]),
        mb(r["size_bytes"]),
        fmt(r["size_ratio"], ".2f") + "x",
        mb(r["size_gzip_bytes"]),
        fmt(r["sparsity"], ".3f"),
        goals_cell(r),
    ]


def base_row(rep: dict[str, Any]) -> dict[str, Any]:
    """The baseline's row of a report."""
    return next(r for r in rep["candidates"] if r["is_baseline"])


def machine_of(rep: dict[str, Any]) -> dict[str, Any]:
    """The report's machine for the page header (a placeholder when several measured)."""
    m = rep["machine"] or {}
    if "machines" in m:
        return {"arch": "several machines", "cpu": "", "cpu_count": "?"}
    return m
