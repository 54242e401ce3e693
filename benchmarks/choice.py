"""kfedge's choice among its own files in the side-by-side section: what kfedge.select selects.

The benchmark judges as the product does: the files' side-by-side rounds go through
:func:`kfedge.select.select` itself (family-wise intervals, tiers anchored on the selected file,
never a file really slower than the baseline), and a speed goal is judged as kfedge judges a
required speed-up, on the simultaneous interval's slow end. The renderer calls it on the stored
rows, so the report's choice follows the product's rule whatever rule the run itself used.
"""

from __future__ import annotations

from typing import Any

#: Every ratio's denominator: ONNX Runtime running kfedge's FP32 ONNX export.
BASELINE = "fp32-onnx"


def _session(rows: list[dict[str, Any]], t: str) -> Any:
    """The rows' per-round p50s at ``t`` threads as a side-by-side session kfedge.select reads."""
    from kfedge import stats
    from kfedge.sidebyside import ModelTiming, SideBySide

    models = {}
    for r in rows:
        lat = r["latency"][t]
        rounds = [float(v) for v in lat["p50_rounds"]]
        models[r["name"]] = ModelTiming(
            name=r["name"],
            path=r.get("file", ""),
            format=r["format"],
            p50_ms=float(lat["p50"]),
            p50_ci_ms=stats.median_ci(rounds),
            p90_ms=float(lat.get("p90") or lat["p50"]),
            p99_ms=float(lat.get("p90") or lat["p50"]),
            mean_ms=float(lat["p50"]),
            runs=sum(lat.get("runs_per_round") or [len(rounds)]),
            rounds_p50_ms=rounds,
            runtime={"format": r["format"]},
        )
    n = len(next(iter(models.values())).rounds_p50_ms)
    return SideBySide(models, {}, n, int(t), int(t), "benchmark", 0.0, {})


def kfedge_choice(
    rows: list[dict[str, Any]], threads: int, goal: float | None = None
) -> dict[str, Any] | None:
    """The candidate :func:`kfedge.select.select` selects among kfedge's own files.

    kfedge's files and its FP32 ONNX export (the baseline, :data:`BASELINE`) go through the
    product's selection as they are, on their side-by-side rounds: the same family-wise
    intervals, tiers anchored on the selected file, ties to the more accurate (accuracy is not
    known here, random weights: every file counts as equally accurate, so size decides), never a
    file really slower than the baseline. The speed goal is judged as kfedge judges a required
    speed-up (``min_latency_improvement = 1 - goal``): on the simultaneous interval's slow end.

    Args:
        rows: One model's rows (:func:`summarize`).
        threads: The thread count whose rounds decide.
        goal: The model's goal, a ratio to ORT FP32 (None: none).

    Returns:
        ``{"name", "threads", "ratio", "ratio_ci", "tied", "rule", "reason"}`` and, with a goal,
        ``goal_met`` and ``goal_failed`` (the product's sentence when missed); None when kfedge
        made no file or its FP32 ONNX export was not timed.
    """
    from kfedge.select import select

    t = str(threads)
    mine = [r for r in rows if r["kind"] == "kfedge" and t in r["latency"]]
    if not mine or BASELINE not in {r["name"] for r in mine}:
        return None
    evals = [
        {
            "name": r["name"],
            "technique": "fp32" if r["name"] == BASELINE else r["name"],
            "format": r["format"],
            "accuracy": 1.0,  # random weights: not judged (the sample's section carries it)
            "latency_ms": {"p50": float(r["latency"][t]["p50"])},
            "size_bytes": int(r["size_bytes"]),
        }
        for r in mine
    ]
    sbs = _session(mine, t)
    goals: dict[str, Any] = {"formats": sorted({r["format"] for r in mine})}
    res = select(evals, goals, baseline=BASELINE, timings=sbs)
    name = res["selected"]
    if name is None:
        return None
    by = {c["name"]: c for c in res["candidates"]}
    lat = by[name]["latency"]
    out: dict[str, Any] = {
        "name": name,
        "threads": threads,
        "ratio": lat["ratio"],
        "ratio_ci": lat["ratio_ci"],
        "tied": sorted(n for n, c in by.items() if c["latency_tier"] == by[name]["latency_tier"]),
        "rule": "kfedge.select's rule (family-wise intervals, ties to the more accurate, then "
        "the smaller; accuracy not judged here)",
        "reason": res["reason"],
    }
    if goal is not None:
        judged = select(
            evals, {**goals, "min_latency_improvement": max(0.0, 1.0 - goal)},
            baseline=BASELINE, timings=sbs,
        )  # fmt: skip
        failed = [f for f in judged_goals(judged, name) if "latency improvement" in f]
        out["goal_met"] = not failed
        out["goal_failed"] = failed[0] if failed else None
    return out


def judged_goals(res: dict[str, Any], name: str) -> list[str]:
    """The goals ``name`` fails in a selection (empty when it passes)."""
    return next(c["failed_goals"] for c in res["candidates"] if c["name"] == name)
