"""The selection's reason: one sentence saying why a candidate was chosen, and what is noise.

With side-by-side timings the reason separates real latency differences from ties
(``ptq-int8 0.71x [0.68, 0.74] vs fp32-tflite: faster; tied with ptq-int8 within noise
(...; ratios to ptq-int8): onnx-int8-static 1.03x [0.94, 1.12] ...``: each list states what its
ratios are against), names the candidates never deployed for being really
slower than the baseline, and marks figures the CPU produced in place of an absent
accelerator.
"""

from __future__ import annotations

from kfedge.compare import Latency, ratio_text
from kfedge.evaluation import MB, Evaluation
from kfedge.sidebyside import SideBySide


def _listed(items: list[str], most: int = 6) -> str:
    more = len(items) - most
    return ", ".join(items[:most]) + (f" and {more} more" if more > 0 else "")


def _vs(name: str, ref: str, figures: dict[str, Latency], timings: SideBySide) -> str:
    """``name``'s ratio to ``ref`` paired by round, with its interval (``(CPU)`` marked).

    Falls back to its ratio to the baseline (said so) when either was not timed.
    """
    if name in timings.models and ref in timings.models:
        e = timings.ratio(name, ref)
        text = ratio_text(e.ratio, (e.low, e.high))
        return text + (" (CPU)" if figures[name].cpu_fallback else "")
    return f"{figures[name].text} (vs the baseline)"


def selection_reason(
    evaluations: dict[str, Evaluation],
    ranking: list[str],
    tiers: dict[str, int],
    figures: dict[str, Latency],
    base: Evaluation,
    objective: str,
    timings: SideBySide | None,
) -> str:
    """The sentence that says why the first of ``ranking`` was selected.

    It names the selected candidate's figures against the baseline; with side-by-side
    timings, also which latency differences are real and which are ties (within noise), the
    candidates never deployed for being really slower than the baseline, and the candidates
    whose figures are the CPU's (accelerator absent, fallback allowed).

    Args:
        evaluations: Evaluations by name.
        ranking: Names that meet the goals, best first.
        tiers: Their latency tiers (:func:`kfedge.compare.latency_tiers`).
        figures: Every candidate's latency figures.
        base: The baseline.
        objective: The goals' objective.
        timings: The session, or None.

    Returns:
        The reason.
    """
    best = evaluations[ranking[0]]
    lb = figures[best.name]
    what = {"latency": "fastest (p50)", "size": "smallest", "accuracy": "most accurate"}
    tied = [n for n in ranking[1:] if tiers[n] == tiers[best.name]]
    cpu = " (CPU)" if lb.cpu_fallback else ""
    if timings is not None and objective == "latency" and tied:
        head = (
            f"{best.name}{cpu} is the most accurate (then smallest) of {len(tied) + 1} "
            f"candidates tied for the fastest (p50) within noise; {len(ranking)} candidate(s) "
            "meet the goals"
        )
    else:
        head = (
            f"{best.name}{cpu} is the {what[objective]} of {len(ranking)} candidate(s) "
            "meeting the goals"
        )
    size_ratio = best.size_bytes / base.size_bytes if base.size_bytes else 0.0
    figures_text = (
        f"accuracy {best.accuracy:.4f} ({(best.accuracy - base.accuracy) * 100 + 0.0:+.1f} pts)"
        f", {{p50}}, size {best.size_bytes / MB:.3f} MB ({size_ratio:.2f}x) against the "
        f"baseline {base.name}"
    )
    if timings is None:
        vs = f"{lb.ratio:.2f}x" if lb.ratio is not None else "N/A"
        parts = [f"{head}: " + figures_text.format(p50=f"p50 {lb.p50:.3f} ms ({vs})")]
    elif best.name == base.name:
        parts = [f"{head}: " + figures_text.format(p50=f"p50 {lb.p50:.3f} ms")]
    else:
        parts = [
            f"{head}: {best.name} {lb.text} vs {base.name}: {lb.verdict}; "
            + figures_text.format(p50=f"p50 {lb.p50:.3f} ms")
        ]
    if timings is not None:
        others = [n for n in ranking[1:] if n not in tied and n != base.name]
        if objective == "latency" and tied:
            parts.append(
                f"tied with {best.name} within noise (ranked by accuracy, then size; ratios "
                f"to {best.name}): "
                + _listed(
                    [
                        f"{n} {_vs(n, best.name, figures, timings)} (accuracy "
                        f"{evaluations[n].accuracy:.4f}, {evaluations[n].size_bytes / MB:.3f} MB)"
                        for n in tied
                    ]
                )
            )
        if objective == "latency" and others:
            parts.append(
                f"really slower than {best.name} (ratios to {best.name}): "
                + _listed([f"{n} {_vs(n, best.name, figures, timings)}" for n in others])
            )
        elif objective != "latency":
            rest = [n for n in ranking[1:] if n != base.name]
            if rest:
                parts.append(
                    f"latency vs {base.name}: "
                    + _listed([f"{n} {figures[n].text} {figures[n].verdict}" for n in rest])
                )
        slower = [
            f"{n} {f.text}"
            for n, f in figures.items()
            if f.verdict == "slower" and n not in ranking
        ]
        if slower:
            parts.append(f"never deployed, really slower than {base.name}: " + _listed(slower))
    on_cpu = [n for n, f in figures.items() if f.cpu_fallback]
    if on_cpu:
        parts.append(
            f"the figures of {_listed(on_cpu)} are the CPU's (the target's accelerator was "
            "absent and the profile allows CPU fallback)"
        )
    reason = "; ".join(parts)
    if best.name == base.name:
        reason += (
            "; no optimized candidate met the goals and beat it"
            if timings is None
            else "; no optimized candidate met the goals and was really faster (ties go to "
            "accuracy, then size)"
        )
    if timings is None:
        reason += "; latency figures are single measurements (no side-by-side timings)"
    else:
        reason += (
            f"; latency side by side ({timings.rounds} rounds, {timings.threads} thread(s), "
            "95 % intervals)"
        )
    return reason
