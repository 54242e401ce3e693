"""The selection's reason: one short verdict sentence, then the evidence as a small table.

The sentence says what was chosen, why (its rule), and its figures against the baseline::

    Selected ptq-int8, the fastest of 4 candidates meeting the goals: 0.71x [0.64, 0.79] the
    baseline fp32-tflite's latency (faster), accuracy -0.3 pts (not significant, McNemar p
    0.41), 0.28x its size.

The evidence is one row per other candidate, *against the selected one* (paired by round), with
the verdict read from the interval printed beside it (:mod:`kfedge.ranking`), the accuracy
difference with McNemar's p, and why it was not chosen. The intervals are labelled with their
real coverage.
"""

from __future__ import annotations

from typing import Any

from kfedge.compare import Latency, intervals_label, measurement
from kfedge.evaluation import MB, Evaluation
from kfedge.ranking import ACCURACY_ALPHA, Ranked, accuracy_test, more_accurate, verdict_word
from kfedge.sidebyside import SideBySide


def accuracy_text(ev: Evaluation, ref: Evaluation) -> str:
    """``accuracy -0.3 pts (not significant, McNemar p 0.41)``; without pairing no test."""
    text = f"accuracy {(ev.accuracy - ref.accuracy) * 100 + 0.0:+.1f} pts"
    test = accuracy_test(ev, ref)
    if test is None:
        return text
    word = "significant" if test["p_value"] < ACCURACY_ALPHA else "not significant"
    return f"{text} ({word}, McNemar p {test['p_value']:.2g})"


def _why(best: Evaluation, ranked: Ranked, objective: str, timings: SideBySide | None) -> str:
    n = len(ranked.ranking)
    if objective != "latency":
        what = "smallest" if objective == "size" else "most accurate"
        return f"the {what} of {n} candidate(s) meeting the goals"
    top = [m for m in ranked.ranking if ranked.tiers[m] == ranked.tiers[best.name]]
    if timings is not None and len(top) > 1:
        return (
            f"the most accurate, then smallest, of the {len(top)} candidates tied for the "
            f"fastest within noise ({n} meet the goals)"
        )
    return f"the fastest of {n} candidate(s) meeting the goals"


def _latency(
    lb: Latency, best: Evaluation, base: Evaluation, timings: SideBySide | None, practical: float
) -> str:
    cpu = " (CPU)" if lb.cpu_fallback else ""
    if best.name == base.name:
        return f"p50 {lb.p50:.3f} ms{cpu}"
    if timings is None or lb.ratio_ci is None:
        vs = f"{lb.ratio:.2f}x" if lb.ratio is not None else "N/A"
        return f"p50 {lb.p50:.3f} ms ({vs} the baseline {base.name}'s, a single measurement)"
    word = verdict_word(lb.verdict, lb.ratio_ci[0], lb.ratio_ci[1], practical)
    return f"{lb.text} the baseline {base.name}'s latency ({word})"


def _not_chosen(
    n: str, best: Evaluation, evs: dict[str, Evaluation], verdict: str | None, passing: bool
) -> str:
    ev = evs[n]
    if verdict == "slower":
        return f"slower than {best.name}"
    if more_accurate(best, ev):
        return f"less accurate than {best.name}"
    if ev.size_bytes > best.size_bytes:
        return "accuracy tied, larger"
    if ev.size_bytes == best.size_bytes and passing:
        return "accuracy and size tied, a higher point ratio"
    return f"ranked after {best.name}" if passing else "fails the goals"


def selection_reason(
    evaluations: dict[str, Evaluation],
    ranked: Ranked,
    figures: dict[str, Latency],
    base: Evaluation,
    objective: str,
    timings: SideBySide | None,
    failed_goals: dict[str, list[str]] | None = None,
    practical: float = 0.02,
) -> tuple[str, list[dict[str, Any]]]:
    """The verdict sentence for the first of ``ranked.ranking``, and its evidence rows.

    Args:
        evaluations: Evaluations by name.
        ranked: The ranking (:func:`kfedge.ranking.rank`), non-empty.
        figures: Every candidate's latency figures against the baseline.
        base: The baseline.
        objective: The goals' objective.
        timings: The session, or None.
        failed_goals: The goals each candidate fails (rows of those that fail say so).
        practical: The tie threshold (``Goals.tie_within``), for the verdicts' words.

    Returns:
        ``(reason, evidence)``: the sentence (plus one on how latency was measured), and one
        row per other candidate: ``name``, ``vs_selected`` (ratio to the selected one with
        its interval, or None), ``ratio`` and ``ratio_ci`` (the same as numbers),
        ``verdict`` (against the selected one, read from that interval,
        :func:`kfedge.ranking.verdict_word`), ``accuracy_pts`` (difference to it),
        ``mcnemar_p`` (or None), ``size_mb``, ``passed`` and ``why`` (why it was not chosen).
    """
    best = evaluations[ranked.ranking[0]]
    lb = figures[best.name]
    size_ratio = best.size_bytes / base.size_bytes if base.size_bytes else 0.0
    why = _why(best, ranked, objective, timings)
    parts = [_latency(lb, best, base, timings, practical)]
    if best.name != base.name:
        parts += [accuracy_text(best, base), f"{size_ratio:.2f}x its size"]
    sentence = f"Selected {best.name}, {why}: " + ", ".join(parts) + "."
    if best.name == base.name:
        sentence = sentence[:-1] + (
            "; no optimized candidate met the goals and beat it."
            if timings is None
            else "; no optimized candidate met the goals and was really faster (ties go to "
            "accuracy, then size)."
        )
    if timings is None:
        sentence += " Latency figures are single measurements (no side-by-side timings)."
    else:
        meas = measurement(timings, figures)
        sentence += (
            f" Latency side by side ({timings.rounds} rounds, {timings.threads} thread(s)); "
            f"{intervals_label(meas)}; candidates against {best.name}: each "
            f"{(ranked.confidence or 0.95) * 100:.4g} %."
        )
    on_cpu = [n for n, f in figures.items() if f.cpu_fallback]
    if on_cpu:
        sentence += (
            f" The figures of {', '.join(on_cpu)} are the CPU's (the target's accelerator was "
            "absent and the profile allows CPU fallback)."
        )
    failed_goals = failed_goals or {}
    evidence = []
    for n in [m for m in evaluations if m != best.name]:
        p = (ranked.vs_selected or {}).get(n)
        test = accuracy_test(evaluations[n], best)
        passed = n in ranked.ranking
        evidence.append(
            {
                "name": n,
                "vs_selected": p.text + (" (CPU)" if figures[n].cpu_fallback else "")
                if p
                else None,
                "ratio": p.ratio if p else None,
                "ratio_ci": [p.low, p.high] if p else None,
                "verdict": p.word if p else None,
                "accuracy_pts": (evaluations[n].accuracy - best.accuracy) * 100 + 0.0,
                "mcnemar_p": test["p_value"] if test else None,
                "size_mb": evaluations[n].size_bytes / MB,
                "passed": passed,
                "why": _not_chosen(n, best, evaluations, p.verdict if p else None, passed)
                if passed
                else "fails: " + "; ".join(failed_goals.get(n, [])),
            }
        )
    evidence.sort(
        key=lambda r: (not r["passed"], ranked.ranking.index(r["name"]) if r["passed"] else 0)
    )
    return sentence, evidence
