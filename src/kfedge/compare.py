"""The figures every candidate is compared on, the same for selection and report.

* **Latency.** With the benchmark step's side-by-side timings (:mod:`kfedge.sidebyside`) every
  candidate's p50 with its interval, p90 / p99, and its ratio to the baseline with an interval
  from the paired rounds and a verdict (``faster`` / ``tie`` / ``slower``,
  :func:`kfedge.stats.compare_ratio`); evaluations and timings are matched by name, never by
  position. Without timings (older runs) the evaluation's own figures: single measurements,
  no interval, no verdict.
* **Accuracy.** A Wilson interval, and McNemar's paired test against the baseline when both
  evaluations recorded per-sample correctness on the same samples.
* **Runtime marks.** Whether the target's accelerator was absent and the CPU ran instead
  (``fallback_to_cpu``), and for ONNX Runtime INT8 candidates whether the ISA their settings
  were chosen for matches the timing node's (:mod:`kfedge.cpu`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfedge import stats
from kfedge.errors import ConfigError, InvalidInputError
from kfedge.evaluation import Evaluation
from kfedge.sidebyside import SideBySide

#: Where a latency figure comes from.
SIDE_BY_SIDE = "side-by-side"
SINGLE = "evaluation"
#: Ratios closer to 1 than this are ties even with a narrow interval (see Goals.tie_within).
PRACTICAL = 0.02
#: The confidence of a family of verdicts (all candidates against one reference) as a whole.
FAMILY_CONFIDENCE = 0.95

TimingsLike = SideBySide | dict[str, Any] | str | Path


def load_timings(timings: TimingsLike | None) -> SideBySide | None:
    """The side-by-side timings from a session, its dict or its JSON file (None stays None).

    Raises:
        InvalidInputError: Not a kfedge side-by-side file.
    """
    from kfedge import sidebyside

    if timings is None or isinstance(timings, SideBySide):
        return timings
    if isinstance(timings, dict):
        return SideBySide.from_dict(timings)
    return sidebyside.load(timings)


def ratio_text(ratio: float | None, ci: tuple[float, float] | list[float] | None) -> str:
    """``0.71x [0.68, 0.74]`` (or ``0.71x`` without an interval, ``N/A`` without a ratio)."""
    if ratio is None:
        return "N/A"
    return f"{ratio:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


@dataclass(frozen=True)
class Latency:
    """One candidate's latency figures as selection and report use them.

    Attributes:
        p50: Median batch-1 latency (ms).
        p90: 90th percentile (ms).
        p99: 99th percentile (ms).
        mean: Mean (ms).
        runs: Timed runs.
        p50_ci: Interval of the p50 over rounds (order statistics; None: a single
            measurement); its real coverage is ``p50_coverage``.
        ratio: p50 ratio to the baseline (the paired rounds' geometric mean when timed).
        ratio_ci: Its simultaneous interval (None without side-by-side timings): every
            candidate's interval against the baseline covers at once with 95 %.
        verdict: ``faster`` / ``tie`` / ``slower`` than the baseline, read from ``ratio_ci``
            (so it never contradicts it), ``baseline`` for the baseline itself, None without
            an interval.
        source: ``side-by-side`` (the benchmark step) or ``evaluation`` (single measurement).
        skipped: Why the benchmark did not time it (then the figures are the evaluation's).
        cpu_fallback: The target's accelerator was absent and the CPU ran it.
        runtime: The runtime really used (providers / delegate / device), as recorded.
        ratio_confidence: The per-comparison confidence of ``ratio_ci`` (95 % shared out over
            the candidates compared with the baseline, :func:`kfedge.stats.simultaneous`).
        p50_coverage: The real coverage of ``p50_ci`` (93.75 % at 5 rounds, the range).
    """

    p50: float
    p90: float | None
    p99: float | None
    mean: float | None
    runs: int | None
    p50_ci: tuple[float, float] | None
    ratio: float | None
    ratio_ci: tuple[float, float] | None
    verdict: str | None
    source: str
    skipped: str | None = None
    cpu_fallback: bool = False
    runtime: dict[str, Any] = field(default_factory=dict)
    ratio_confidence: float | None = None
    p50_coverage: float | None = None

    @property
    def text(self) -> str:
        """The ratio with its interval, marked ``(CPU)`` when the CPU stood in."""
        return ratio_text(self.ratio, self.ratio_ci) + (" (CPU)" if self.cpu_fallback else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (intervals as lists)."""
        d = asdict(self)
        for k in ("p50_ci", "ratio_ci"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d


_RUNTIME_KEYS = (
    "providers",
    "requested_providers",
    "delegate",
    "requested_delegate",
    "device",
    "fallback_to_cpu",
    "precision",
    "requested_precision",
)


def _runtime_of(ev: Evaluation, timed: dict[str, Any] | None) -> dict[str, Any]:
    rt = timed if timed is not None else (ev.runtime.to_dict() if ev.runtime else {})
    return {k: rt[k] for k in _RUNTIME_KEYS if rt.get(k) is not None}


def runtime_text(runtime: dict[str, Any]) -> str:
    """What ran a candidate against what the target asked for, in words."""
    parts = []
    for used, asked in (
        ("providers", "requested_providers"),
        ("delegate", "requested_delegate"),
        ("device", "requested_device"),
    ):
        if runtime.get(used) or runtime.get(asked):
            got = runtime.get(used)
            got = ", ".join(got) if isinstance(got, list) else (got or "none (CPU)")
            text = f"{used}: {got}"
            want = runtime.get(asked)
            if want and want != runtime.get(used):
                text += f" (asked for {', '.join(want) if isinstance(want, list) else want})"
            parts.append(text)
    return "; ".join(parts) or "CPU"


def cpu_fallback(ev: Evaluation, timed_runtime: dict[str, Any] | None = None) -> bool:
    """Whether the evaluation or the timing says the CPU stood in for the accelerator."""
    in_eval = bool(ev.runtime and ev.runtime.fallback_to_cpu)
    return in_eval or bool((timed_runtime or {}).get("fallback_to_cpu"))


def _single(ev: Evaluation, base: Evaluation, skipped: str | None = None) -> Latency:
    lat, bp50 = ev.latency_ms, base.latency_ms.p50
    return Latency(
        p50=lat.p50,
        p90=lat.p90,
        p99=lat.p99,
        mean=lat.mean,
        runs=lat.runs,
        p50_ci=None,
        # a candidate the benchmark skipped has no figure comparable with the baseline's
        ratio=lat.p50 / bp50 if bp50 > 0 and skipped is None else None,
        ratio_ci=None,
        verdict=None,
        source=SINGLE,
        skipped=skipped,
        cpu_fallback=cpu_fallback(ev),
        runtime=_runtime_of(ev, None),
    )


def latency_figures(
    evaluations: list[Evaluation],
    base: Evaluation,
    timings: SideBySide | None,
    practical: float = PRACTICAL,
) -> tuple[dict[str, Latency], list[str]]:
    """Every candidate's latency figures, from the side-by-side timings when there are some.

    The ratio intervals against the baseline are *simultaneous*: with ``m`` candidates
    compared with it, each is computed at ``1 - 0.05 / m`` (:func:`kfedge.stats.simultaneous`),
    so the chance that any verdict of the run is wrong (a candidate of the baseline's speed
    called faster, the best of many included) stays under 5 %.

    Args:
        evaluations: The evaluations, baseline included.
        base: The baseline's evaluation.
        timings: The benchmark step's session, or None (the evaluations' own figures).
        practical: Ratios within this fraction of 1 are ties (:func:`kfedge.stats.compare_ratio`).

    Returns:
        ``({name: Latency}, warnings)``.

    Raises:
        InvalidInputError: With timings: a candidate the benchmark neither timed nor skipped
            with a reason, or a baseline it did not time (nothing could be compared).
    """
    if timings is None:
        return {ev.name: _single(ev, base) for ev in evaluations}, []
    timed, skipped = timings.models, timings.skipped
    missing = [e.name for e in evaluations if e.name not in timed and e.name not in skipped]
    if missing:
        raise InvalidInputError(
            f"the side-by-side timings have no entry for {missing} (timed: {sorted(timed)}, "
            f"skipped: {sorted(skipped)}); evaluations and timings are matched by candidate "
            "name: give the benchmark every candidate, or the timings file of this run"
        )
    if base.name not in timed:
        raise InvalidInputError(
            f"the baseline {base.name!r} was not timed side by side ({skipped[base.name]}); "
            "every candidate's ratio is taken against it, so the benchmark must time it"
        )
    out: dict[str, Latency] = {}
    compared = sum(1 for e in evaluations if e.name in timed and e.name != base.name)
    confidence = stats.simultaneous(FAMILY_CONFIDENCE, compared)
    for ev in evaluations:
        if ev.name not in timed:
            out[ev.name] = _single(ev, base, skipped=skipped[ev.name])
            continue
        t = timed[ev.name]
        est = timings.ratio(ev.name, base.name, confidence)
        verdict = "baseline" if ev.name == base.name else stats.compare_ratio(est, practical)
        out[ev.name] = Latency(
            p50=t.p50_ms,
            p90=t.p90_ms,
            p99=t.p99_ms,
            mean=t.mean_ms,
            runs=t.runs,
            p50_ci=(float(t.p50_ci_ms[0]), float(t.p50_ci_ms[1])),
            ratio=est.ratio,
            ratio_ci=(est.low, est.high),
            verdict=verdict,
            source=SIDE_BY_SIDE,
            cpu_fallback=cpu_fallback(ev, t.runtime),
            runtime=_runtime_of(ev, t.runtime),
            ratio_confidence=confidence,
            p50_coverage=stats.median_ci_coverage(len(t.rounds_p50_ms)),
        )
    names = {e.name for e in evaluations}
    extra = sorted(set(timed) - names)
    warnings = [f"timed side by side but not evaluated (not compared): {extra}"] if extra else []
    if timings.rounds < 3:
        warnings.append(
            f"the benchmark ran {timings.rounds} round(s): too few to estimate the noise, so "
            "its intervals are too narrow; run at least 3 (benchmark rounds)"
        )
    return out, warnings


# ------------------------------------------------------------------------------- accuracy
def accuracy_figures(ev: Evaluation, base: Evaluation) -> dict[str, Any]:
    """Accuracy with a Wilson interval, and McNemar's paired test against the baseline.

    Returns:
        ``samples``, ``correct``, ``ci`` ([low, high] or None when the sample count is
        unknown), ``mcnemar`` (``a_only``: samples this candidate alone got right,
        ``b_only``: the baseline alone, ``p_value``; None for the baseline and when either
        lacks per-sample correctness or they scored different samples) and ``mcnemar_note``
        (why there is no test).
    """
    rec = ev.sample_correct
    total = rec.count if rec is not None else ev.num_samples
    correct: int | None = None
    if rec is not None:
        correct = int(rec.to_array().sum())
    elif total:
        correct = round(ev.accuracy * total)
    ci = list(stats.wilson_interval(correct, total)) if total and correct is not None else None
    test, note = None, None
    if ev.name == base.name:
        note = "the baseline"
    elif rec is None or base.sample_correct is None:
        note = "per-sample correctness not recorded (evaluation from an older kfedge)"
    elif not rec.same_samples(base.sample_correct):
        note = "scored on other samples than the baseline"
    else:
        test = stats.mcnemar(rec.to_array(), base.sample_correct.to_array())
    return {
        "samples": total,
        "correct": correct,
        "ci": ci,
        "mcnemar": test,
        "mcnemar_note": note,
    }


# ------------------------------------------------------------------------------------ ISA
def node_isa(machine: dict[str, Any] | None) -> Any:
    """The measuring node's ISA (:class:`kfedge.cpu.Isa`) from its ``machine`` record.

    Args:
        machine: A side-by-side ``machine`` (``machine`` and the ``isa`` flags) or an
            evaluation's (``arch``, no flags: the ISA then lists no extensions).

    Returns:
        The ISA, or None when the machine or its architecture is unknown.
    """
    from kfedge.cpu import isa_from_cpuinfo

    arch = (machine or {}).get("machine") or (machine or {}).get("arch")
    if not arch:
        return None
    try:
        return isa_from_cpuinfo("flags : " + " ".join(machine.get("isa") or []), str(arch))
    except ConfigError:
        return None


def describe_isa(isa: Any) -> str:
    """``x86-64 AVX2, no VNNI``, ``x86-64 AVX-512 + VNNI``, ``arm64 dotprod`` ..."""
    names = {
        "avx2": "AVX2",
        "avx512": "AVX-512",
        "vnni": "VNNI",
        "amx": "AMX",
        "bf16": "BF16",
        "fp16": "FP16",
    }
    exts = [names.get(e, e) for e in sorted(isa.extensions) if e != "vnni"]
    text = isa.arch + (" " + ", ".join(exts) if exts else "")
    if isa.arch == "x86-64":
        if isa.vnni:
            text += " + VNNI"
        elif isa.extensions:
            text += ", no VNNI"
        else:
            text += ", extensions not stated (VNNI not assumed)"
    return text


def int8_isa_note(ev: Evaluation, machine: dict[str, Any] | None) -> dict[str, Any] | None:
    """For an ONNX Runtime INT8 candidate: the ISA its settings assumed against the node's.

    Args:
        ev: The evaluation (its ``candidate_stats.int8_settings``, from ``candidate.json``).
        machine: The timing node (side-by-side ``machine``), or None.

    Returns:
        None for other candidates; else ``settings_isa``, ``reduce_range``, ``node_isa``
        (None when unknown), ``matches`` (None when the node is unknown) and ``text``, e.g.
        ``settings for x86-64 AVX2, no VNNI (reduce_range on); this node: x86-64 AVX2, no
        VNNI: match``.
    """
    from kfedge.cpu import ort_int8_settings, parse_isa

    st = ev.candidate_stats.get("int8_settings")
    if not isinstance(st, dict) or "isa" not in st:
        return None
    rr = bool(st.get("reduce_range"))
    try:
        assumed = describe_isa(parse_isa(str(st["isa"])))
    except ConfigError:
        assumed = str(st["isa"])
    text = f"settings for {assumed} (reduce_range {'on' if rr else 'off'})"
    node = node_isa(machine)
    if node is None:
        return {
            "settings_isa": st["isa"],
            "reduce_range": rr,
            "node_isa": None,
            "matches": None,
            "text": text + "; this node's ISA was not recorded",
        }
    needed = ort_int8_settings(node, str(ev.params.get("weight_type", "int8"))).reduce_range
    text += f"; this node: {describe_isa(node)}"
    if needed == rr:
        text += ": match"
    elif needed:
        text += (
            ": MISMATCH, this node has no VNNI and its int16 pair sums saturate with 8-bit "
            "weights; accuracy on it can be points lower"
        )
    else:
        text += ": conservative for this node (7-bit weights where 8 bits would be accurate)"
    return {
        "settings_isa": st["isa"],
        "reduce_range": rr,
        "node_isa": node.name,
        "matches": needed == rr,
        "text": text,
    }


# ---------------------------------------------------------------------------- measurement
def measurement(timings: SideBySide | None, figures: dict[str, Latency]) -> dict[str, Any]:
    """How the latency figures were taken, for the report's header line.

    Returns:
        ``source``; with timings also rounds, threads, usable_cpus, cpus_source, cpu, arch,
        isa (flags), seconds, skipped (name -> reason), confidence (of the family of ratio
        intervals), comparisons (candidates against the baseline), ratio_confidence (each
        interval's), p50_coverage (the p50 intervals' real coverage) and the run's ``spread``
        (median and largest relative half-width of the candidates' ratio intervals).
    """
    if timings is None:
        return {
            "source": SINGLE,
            "note": "single measurements from each evaluation (no side-by-side timings): no "
            "intervals, differences may be noise",
        }
    halves = sorted(
        (f.ratio_ci[1] - f.ratio_ci[0]) / 2 / f.ratio
        for f in figures.values()
        if f.ratio_ci and f.ratio and f.verdict != "baseline"
    )
    m = timings.machine or {}
    compared = [f for f in figures.values() if f.ratio_confidence and f.verdict != "baseline"]
    return {
        "source": SIDE_BY_SIDE,
        "rounds": timings.rounds,
        "threads": timings.threads,
        "usable_cpus": timings.usable_cpus,
        "cpus_source": timings.cpus_source,
        "cpu": m.get("cpu", ""),
        "arch": m.get("machine", ""),
        "isa": list(m.get("isa", [])),
        "seconds": round(timings.seconds, 1),
        "skipped": dict(timings.skipped),
        "confidence": FAMILY_CONFIDENCE,
        "comparisons": len(compared),
        "ratio_confidence": compared[0].ratio_confidence if compared else FAMILY_CONFIDENCE,
        "p50_coverage": stats.median_ci_coverage(timings.rounds),
        "spread": {
            "median": halves[len(halves) // 2] if halves else None,
            "max": halves[-1] if halves else None,
        },
    }


def _pct(x: float) -> str:
    return f"{x * 100:.2f}".rstrip("0").rstrip(".") + " %"


def intervals_label(meas: dict[str, Any]) -> str:
    """What the intervals are, with their real coverage.

    ``ratio intervals: simultaneous 95 % over 4 candidates (each 98.75 %); p50 intervals:
    93.75 % (the range of 5 rounds)``; a report of an older run (no ``comparisons``) says
    ``95 % intervals over rounds``.
    """
    if "comparisons" not in meas:
        return f"{round(meas.get('confidence', 0.95) * 100)} % intervals over rounds"
    m = meas["comparisons"]
    ratio = (
        f"ratio intervals: simultaneous {_pct(meas['confidence'])} over {m} candidates "
        f"(each {_pct(meas['ratio_confidence'])})"
        if m > 1
        else f"ratio intervals: {_pct(meas['confidence'])}"
    )
    cov = meas.get("p50_coverage")
    p50 = f"p50 intervals: {_pct(cov)}" if cov is not None else "p50 intervals"
    if cov is not None and cov < meas["confidence"]:
        p50 += (
            f" (the range of {meas['rounds']} rounds; more rounds for {_pct(meas['confidence'])})"
        )
    return f"{ratio}; {p50}"


def measurement_line(meas: dict[str, Any] | None) -> str:
    """One sentence: how latency was measured (threads, CPUs, rounds, CPU, ISA, spread)."""
    if not meas or meas.get("source") != SIDE_BY_SIDE:
        return "Latency: " + (meas or {}).get(
            "note", "single measurements from each evaluation (no intervals)"
        )
    isa = ", ".join(meas.get("isa") or []) or "none of avx2/avx512/vnni/amx/dotprod/i8mm"
    spread = meas.get("spread") or {}
    text = (
        f"Latency: side by side, {meas['rounds']} interleaved rounds, {meas['threads']} "
        f"thread(s) of {meas['usable_cpus']} usable CPU(s) (limited by {meas['cpus_source']}); "
        f"node CPU: {meas.get('cpu') or '?'} ({meas.get('arch') or '?'}), ISA flags: {isa}; "
        + intervals_label(meas)
    )
    if spread.get("median") is not None:
        text += (
            f"; run spread: ratio intervals ±{spread['median'] * 100:.1f} % (median), "
            f"±{spread['max'] * 100:.1f} % (largest)"
        )
    return text
