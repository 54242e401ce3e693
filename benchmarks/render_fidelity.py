"""Markdown of the measurement-fidelity section (:mod:`benchmarks.fidelity`)."""

from __future__ import annotations

from typing import Any

from benchmarks.text import md_table

TITLE = "9. Measurement fidelity: reported against alone"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def fidelity_md(res: dict[str, Any]) -> str:
    """Section: reported p50s against the same files timed alone, and the dense pruned copy."""
    cfg = res["config"]
    tol = cfg["tolerance"] * 100
    out = [f"## {TITLE}", ""]
    out.append(
        f"What this shows: whether the latency `kfedge run` reports is the files' own. "
        f"{res['label']} (random weights) and {cfg['images']} random images went through "
        f"`{res['run']['command']}` ({res['run']['seconds'] / 60:.1f} min, exit "
        f"{res['run']['returncode']}). Afterwards, on the quiet machine, every file the "
        f"run's benchmark step timed was timed again alone: one fresh process per file, one "
        f"file at a time, {cfg['repeats']} times in a rotating order, {cfg['budget_s']:g} s "
        "of timed runs each, with the step's thread count; the alone figure is the median of "
        f"those p50s. Goal: every reported p50 within {tol:.0f} % of its alone figure."
    )
    out.append("")
    if "rows" not in res:
        out += [f"The run did not finish: {res.get('error', 'no result')}.", ""]
        out += ["Last lines of its output:", "", "```", *res["run"]["tail"], "```", ""]
        return "\n".join(out)
    rows = []
    for r in res["rows"]:
        ci = r.get("reported_p50_ci_ms")
        ci_s = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        rows.append(
            [
                f"`{r['name']}`" + (" (selected)" if r["selected"] else ""),
                r["format"],
                _ms(r["reported_p50_ms"]) + ci_s,
                _ms(r["alone_p50_ms"]),
                f"{r['deviation'] * 100:+.1f} %",
                "yes" if r["within"] else "**no**",
            ]
        )
    out.append(
        f"The benchmark step used {res['threads']} thread(s) of {res['usable_cpus']} usable "
        f"CPU(s), {res['rounds']} interleaved rounds."
    )
    out += [
        "",
        md_table(
            [
                "Candidate",
                "Format",
                "Reported p50 ms [95 % CI]",
                "Alone p50 ms",
                "Reported vs alone",
                f"Within {tol:.0f} %",
            ],
            rows,
        ),
        "",
    ]
    worst = res["worst_deviation"]
    bad = [r["name"] for r in res["rows"] if not r["within"]]
    if res["within"]:
        out.append(
            f"Result: every reported p50 is within {tol:.0f} % of the file timed alone (the "
            f"largest difference is {worst * 100:.1f} %): the goal is met."
        )
    else:
        out.append(
            f"Result: the goal is missed: {', '.join(f'`{n}`' for n in bad)} differ by more "
            f"than {tol:.0f} % (largest {worst * 100:.1f} %)."
        )
    sel = res.get("selected")
    out.append(
        f"The run selected `{sel}`." if sel else "The run selected no candidate (FP32 is kept)."
    )
    if res.get("reason"):
        out.append(f"Its reason: {res['reason']}")
    out += ["", *_dense_md(res.get("dense") or {}), ""]
    return "\n".join(out)


def _dense_md(d: dict[str, Any]) -> list[str]:
    """Lines on the dense pruned copy against its baseline."""
    head = "**A dense pruned copy of the baseline.** "
    if "error" in d:
        return [head + f"Not measured: {d['error']}."]
    if not d:
        return [head + "Not measured in this run."]
    lo, hi = d["ratio_ci"]
    verdict = {
        "tie": "a tie: it reads 1.00x within its interval, as the same arithmetic must",
        "faster": "called faster, which the same arithmetic cannot be: the method is wrong",
        "slower": "called slower, which the same arithmetic cannot be: the method is wrong",
    }.get(d["verdict"], d["verdict"])
    p50 = d["p50_ms"]
    return [
        head + f"{d['sparsity'] * 100:.0f} % of every kernel's weights set to zero, stored dense "
        f"(the baseline's arithmetic), both exported to {d['format'].upper()} and timed side by "
        f"side ({d['rounds']} interleaved rounds, {d['threads']} thread(s)): "
        f"{_ms(p50.get('dense-pruned-50'))} ms against {_ms(p50.get('baseline'))} ms, ratio "
        f"{d['ratio']:.3f}x [{lo:.3f}, {hi:.3f}]: {verdict}."
    ]
