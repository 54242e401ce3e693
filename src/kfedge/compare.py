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
        p50_ci: 95 % interval of the p50 over rounds (None: a single measurement).
        ratio: p50 ratio to the baseline (the paired rounds' geometric mean when timed).
        ratio_ci: Its 95 % interval (None without side-by-side timings).
        verdict: ``faster`` / ``tie`` / ``slower`` than the baseline, ``baseline`` for the
            baseline itself, None without an interval.
        source: ``side-by-side`` (the benchmark step) or ``evaluation`` (single measurement).
        skipped: Why the benchmark did not time it (then the figures are the evaluation's).
        cpu_fallback: The target's accelerator was absent and the CPU ran it.
        runtime: The runtime really used (providers / delegate / device), as recorded.
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
    for ev in evaluations:
        if ev.name not in timed:
            out[ev.name] = _single(ev, base, skipped=skipped[ev.name])
            continue
        t = timed[ev.name]
        est = timings.ratio(ev.name, base.name)
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


def latency_tiers(
    names: list[str],
    figures: dict[str, Latency],
    timings: SideBySide | None,
    practical: float = PRACTICAL,
) -> dict[str, int]:
    """Group candidates into latency tiers: within a tier the differences are noise.

    With timings, the fastest remaining candidate (lowest ratio) anchors a tier, and every
    remaining candidate not really slower than it (:func:`kfedge.stats.compare_ratio` on their
    paired ratio) joins it; repeat with the rest. Without timings every distinct p50 is its own
    tier (single measurements: no notion of noise).

    Args:
        names: The candidates to group (all timed side by side when ``timings`` is given).
        figures: Their latency figures (:func:`latency_figures`).
        timings: The session, or None.
        practical: As :func:`kfedge.stats.compare_ratio`.

    Returns:
        ``{name: tier}``, tier 0 the fastest.
    """
    if timings is None or any(figures[n].source != SIDE_BY_SIDE for n in names):
        values = sorted({figures[n].p50 for n in names})
        return {n: values.index(figures[n].p50) for n in names}
    pool = sorted(names, key=lambda n: (figures[n].ratio or 0.0, n))
    tiers: dict[str, int] = {}
    tier = 0
    while pool:
        anchor = pool[0]
        members = [
            n
            for n in pool
            if n == anchor or stats.compare_ratio(timings.ratio(n, anchor), practical) != "slower"
        ]
        for n in members:
            tiers[n] = tier
        pool = [n for n in pool if n not in members]
        tier += 1
    return tiers


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
    """The timing node's ISA (:class:`kfedge.cpu.Isa`) from a side-by-side ``machine``.

    Returns:
        The ISA, or None when the machine or its architecture is unknown.
    """
    from kfedge.cpu import isa_from_cpuinfo

    if not machine or not machine.get("machine"):
        return None
    try:
        return isa_from_cpuinfo("flags : " + " ".join(machine.get("isa", [])), machine["machine"])
    except ConfigError:
        return None


def describe_isa(isa: Any) -> str:
    """``x86-64 AVX2, no VNNI``, ``x86-64 AVX-512 + VNNI``, ``arm64 dotprod`` ..."""
    names = {"avx2": "AVX2", "avx512": "AVX-512", "vnni": "VNNI", "amx": "AMX"}
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
        isa (flags), seconds, skipped (name -> reason), confidence and the run's ``spread``
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
        "confidence": 0.95,
        "spread": {
            "median": halves[len(halves) // 2] if halves else None,
            "max": halves[-1] if halves else None,
        },
    }


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
        f"{round(meas.get('confidence', 0.95) * 100)} % intervals over rounds"
    )
    if spread.get("median") is not None:
        text += (
            f"; run spread: ratio intervals ±{spread['median'] * 100:.1f} % (median), "
            f"±{spread['max'] * 100:.1f} % (largest)"
        )
    return text
