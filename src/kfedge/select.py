"""Goal-driven, noise-aware selection of the candidate to deploy.

Every candidate is compared with the *baseline*: the FP32 candidate of the deployable format,
measured the same way (same runner, machine and threads), or the candidate named explicitly.

Latency comes from the benchmark step's side-by-side timings when given (every candidate and
the baseline timed together in interleaved rounds, :mod:`kfedge.sidebyside`), matched by name:

* a candidate is *faster* (or *slower*) than another only when the interval of their paired
  latency ratio lies wholly below (above) 1 and the ratio differs from 1 by more than
  ``tie_within`` (:func:`kfedge.stats.compare_ratio`); otherwise they are *tied*; the intervals
  are simultaneous over the candidates compared (family-wise 95 %, :mod:`kfedge.compare`);
* candidates tied within noise are ranked by accuracy (more accurate only when McNemar's paired
  test says so), then size, in tiers anchored on the selected candidate (objective latency,
  :mod:`kfedge.ranking`); with objective size or accuracy, latency tiers break ties of those;
* a candidate really slower than the baseline is never selected while the baseline meets the
  goals, whatever the objective (a quantized model is not preferred for being "int8");
* the speed-up goal is judged on the ratio interval's conservative (slow) end; the latency
  ceiling on the side-by-side p50.

Without timings (older runs) the evaluations' single measurements are compared as they are, and
the reason says so.

Units:

* accuracy drops are FRACTIONS: ``max_accuracy_drop=0.01`` allows one point (0.990 -> 0.980);
  ``max_relative_accuracy_drop=0.01`` allows 1 % of the baseline's accuracy.
* ``min_latency_improvement=0.2`` demands a p50 at least 20 % below the baseline's p50.
* ``max_size_mb`` uses 1 MB = 1,000,000 bytes (as the report's MB columns do).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kfedge.compare import (
    SIDE_BY_SIDE,
    SINGLE,
    Latency,
    TimingsLike,
    int8_isa_note,
    latency_figures,
    load_timings,
    measurement,
)
from kfedge.errors import ConfigError, InvalidInputError, NotFoundError
from kfedge.evaluation import MB, Evaluation, EvaluationLike, as_evaluations, load_evaluation
from kfedge.failure import Failure, check_usable, read_evaluation_file
from kfedge.formats import DEPLOYABLE, FORMATS
from kfedge.ranking import ACCURACY_ALPHA, accuracy_test, rank
from kfedge.select_reason import selection_reason

_FP32_MARKERS = ("baseline", "fp32", "float32", "export", "original")


class Goals(BaseModel):
    """What a deployable candidate must achieve, and what to optimise among those that do.

    Attributes:
        max_accuracy_drop: Largest allowed drop of top-1 accuracy below the baseline, as a
            fraction (0.01 = 1 point).
        max_relative_accuracy_drop: Largest allowed drop as a fraction of the baseline's
            accuracy (0.01 = 1 % of it).
        min_accuracy: Absolute floor for top-1 accuracy (fraction).
        max_latency_ms: Largest allowed p50 latency at batch 1, in milliseconds.
        min_latency_improvement: Required p50 reduction against the baseline (0.2 = at least
            20 % faster); with side-by-side timings judged on the ratio interval's
            conservative (slow) end.
        max_size_bytes: Largest allowed model file size in bytes.
        max_size_mb: The same in MB (1 MB = 1,000,000 bytes); give one of the two.
        objective: What ranks the candidates that pass: ``latency`` (lowest p50), ``size``
            (smallest file) or ``accuracy`` (highest top-1).
        formats: Formats that may be selected; default: the deployable ones (tflite, onnx),
            since the model server runs only those.
        include_baseline: Whether the baseline itself may be selected (default True: when no
            optimized candidate beats it, deploying the FP32 model is the honest answer).
        tie_within: Latency ratios closer to 1 than this fraction are ties even when their
            interval is narrow (default 0.02: a 2 % gain does not outweigh accuracy or size).
    """

    model_config = ConfigDict(extra="forbid")

    max_accuracy_drop: float | None = Field(default=None, ge=0.0, le=1.0)
    max_relative_accuracy_drop: float | None = Field(default=None, ge=0.0, le=1.0)
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    max_latency_ms: float | None = Field(default=None, gt=0.0)
    min_latency_improvement: float | None = Field(default=None, ge=0.0, lt=1.0)
    max_size_bytes: int | None = Field(default=None, gt=0)
    max_size_mb: float | None = Field(default=None, gt=0.0)
    objective: Literal["latency", "size", "accuracy"] = "latency"
    formats: list[str] = Field(default_factory=lambda: list(DEPLOYABLE))
    include_baseline: bool = True
    tie_within: float = Field(default=0.02, ge=0.0, lt=0.5)

    @model_validator(mode="after")
    def _check(self) -> Goals:
        if self.max_size_bytes is not None and self.max_size_mb is not None:
            raise ValueError("give max_size_bytes or max_size_mb, not both")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {list(FORMATS)}, got {bad}")
        return self

    @property
    def size_limit(self) -> int | None:
        """The size limit in bytes, whichever field gave it."""
        if self.max_size_mb is not None:
            return int(self.max_size_mb * MB)
        return self.max_size_bytes


def goals_dict(goals: dict[str, Any] | str | None) -> dict[str, Any]:
    """Goals as given (a dict, a JSON string, or None / "" for none) as a dict.

    Raises:
        ConfigError: A string that is not JSON, or JSON / a value that is not an object.
    """
    if goals is None or (isinstance(goals, str) and not goals.strip()):
        return {}
    if isinstance(goals, str):
        try:
            goals = json.loads(goals)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"goals must be a JSON object, got {goals!r} ({exc})") from exc
    if not isinstance(goals, dict):
        raise ConfigError(f"goals must be a JSON object / dict, got {type(goals).__name__}")
    return dict(goals)


def parse_goals(goals: Goals | dict[str, Any] | str | None) -> Goals:
    """Turn a Goals object, dict or JSON string (empty = no constraints) into :class:`Goals`.

    Args:
        goals: The goals.

    Returns:
        Validated goals.

    Raises:
        ConfigError: Unknown keys, wrong types or out-of-range values, named one by one.
    """
    if isinstance(goals, Goals):
        return goals
    try:
        return Goals(**goals_dict(goals))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'goals'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] != "extra_forbidden" else "")
            for e in exc.errors()
        )
        raise ConfigError(f"invalid goals: {problems}") from None


#: The goals key holding per-target overrides in a fleet run: ``{"targets": {name: {...}}}``.
PER_TARGET = "targets"


def goals_for_target(goals: dict[str, Any] | str | None, target: str) -> dict[str, Any]:
    """One target's goals: the fleet-wide goals with that target's overrides applied.

    Args:
        goals: Goals as a dict or JSON string; its ``targets`` map (target name -> goals)
            overrides the fleet-wide fields for that target.
        target: The target's name.

    Returns:
        The target's goals, without the ``targets`` map.

    Raises:
        ConfigError: Goals that are not a JSON object, or overrides that are not one.
    """
    goals = goals_dict(goals)
    out = {k: v for k, v in goals.items() if k != PER_TARGET}
    per = goals.get(PER_TARGET) or {}
    if not isinstance(per, dict) or not all(isinstance(v, dict) for v in per.values()):
        raise ConfigError(
            f"goals.{PER_TARGET} must map target names to goal objects, e.g. "
            f'{{"cpu-arm64": {{"max_latency_ms": 20}}}}, got {per!r}'
        )
    override = per.get(target, {})
    for given, other in (("max_size_mb", "max_size_bytes"), ("max_size_bytes", "max_size_mb")):
        if given in override:  # the target's size limit replaces the fleet's, in either unit
            out.pop(other, None)
    out.update(override)
    return out


def _fp32_like(ev: Evaluation) -> bool:
    text = f"{ev.technique} {ev.name}".lower()
    return any(m in text for m in _FP32_MARKERS)


def find_baseline(
    evaluations: Iterable[EvaluationLike],
    baseline: str | None = None,
    formats: list[str] | tuple[str, ...] = DEPLOYABLE,
) -> Evaluation:
    """The evaluation every candidate is compared with.

    The named one when ``baseline`` is given; else the FP32 candidate (technique or name saying
    baseline / fp32 / export) in a deployable format, preferring the format most candidates
    have; else an FP32 candidate of any format.

    Args:
        evaluations: Evaluation results.
        baseline: Name of the baseline evaluation, if known.
        formats: Formats the baseline should preferably have.

    Returns:
        The baseline's evaluation.

    Raises:
        NotFoundError: The named baseline is not among the evaluations.
        InvalidInputError: An invalid evaluation, or no baseline can be told apart; name one.
    """
    evs = as_evaluations(evaluations)
    if baseline:
        for ev in evs:
            if ev.name == baseline:
                return ev
        raise NotFoundError(
            f"baseline '{baseline}' is not among the evaluations {[e.name for e in evs]}"
        )
    fp32 = [e for e in evs if _fp32_like(e)]
    counts: dict[str, int] = {}
    for e in evs:
        counts[e.format] = counts.get(e.format, 0) + 1
    deployable = [e for e in fp32 if e.format in formats]
    pool = deployable or fp32
    if not pool:
        raise InvalidInputError(
            "cannot tell which evaluation is the FP32 baseline (none has technique or name "
            f"baseline/fp32/export among {[e.name for e in evs]}); name it"
        )
    return sorted(pool, key=lambda e: (-counts[e.format], e.format != "tflite"))[0]


def drop_significance(ev: Evaluation, base: Evaluation) -> str:
    """``; significant, McNemar p 0.003`` / ``; not significant, McNemar p 0.41``, or "".

    Whether an accuracy difference against the baseline is more than the evaluation samples'
    noise (McNemar's exact paired test on the same samples; "" when they cannot be paired).
    The accuracy goals are judged on the point drop (the conservative reading); this says how
    much that drop is to be believed.
    """
    test = accuracy_test(ev, base)
    if test is None:
        return ""
    p = test["p_value"]
    word = "significant" if p < ACCURACY_ALPHA else "not significant"
    return f"; {word}, McNemar p {p:.2g}"


def check_goals(
    ev: Evaluation,
    base: Evaluation,
    goals: Goals,
    lat: Latency | None = None,
) -> list[str]:
    """The goals one candidate fails, as readable sentences (empty when it passes all).

    Args:
        ev: The candidate's evaluation.
        base: The baseline's evaluation.
        goals: The goals.
        lat: The candidate's latency figures (:func:`kfedge.compare.latency_figures`);
            default: the evaluation's own single measurement. With an interval, the speed-up
            goal is judged on the interval's conservative (slow) end.

    Returns:
        One string per failed goal.
    """
    if lat is None:
        lat = latency_figures([ev, base], base, None)[0][ev.name]
    failed: list[str] = []
    acc, bacc = ev.accuracy, base.accuracy
    drop = bacc - acc
    size = ev.size_bytes
    if ev.format not in goals.formats:
        failed.append(f"format {ev.format} not in allowed formats {goals.formats}")
    if ev.name == base.name and not goals.include_baseline:
        failed.append("is the baseline, and include_baseline is false")
    if goals.max_accuracy_drop is not None and drop > goals.max_accuracy_drop + 1e-12:
        failed.append(
            f"accuracy drop {drop * 100:.1f} pts > {goals.max_accuracy_drop * 100:.1f} pts "
            f"allowed ({acc:.4f} vs baseline {bacc:.4f}{drop_significance(ev, base)})"
        )
    if goals.max_relative_accuracy_drop is not None and bacc > 0:
        rel = drop / bacc
        if rel > goals.max_relative_accuracy_drop + 1e-12:
            failed.append(
                f"relative accuracy drop {rel * 100:.2f} % > "
                f"{goals.max_relative_accuracy_drop * 100:.2f} % allowed"
                + (f" ({drop_significance(ev, base)[2:]})" if drop_significance(ev, base) else "")
            )
    if goals.min_accuracy is not None and acc < goals.min_accuracy:
        failed.append(f"accuracy {acc:.4f} < {goals.min_accuracy:.4f} required")
    if lat.skipped is not None:
        failed.append(
            f"not timed side by side ({lat.skipped}): its latency cannot be compared with "
            "the baseline's"
        )
    elif goals.max_latency_ms is not None and lat.p50 > goals.max_latency_ms:
        failed.append(f"latency p50 {lat.p50:.3f} ms > {goals.max_latency_ms:.3f} ms allowed")
    if goals.min_latency_improvement is not None and lat.skipped is None:
        need = goals.min_latency_improvement
        if lat.ratio_ci is not None:
            gain = 1.0 - lat.ratio_ci[1]  # the interval's conservative (slow) end
            if gain < need - 1e-12:
                failed.append(
                    f"latency improvement {gain * 100:.1f} % at the interval's conservative end "
                    f"({lat.text} of the baseline) < {need * 100:.1f} % required"
                )
        else:
            bp50 = base.latency_ms.p50
            gain = 1.0 - lat.p50 / bp50 if bp50 > 0 else 0.0
            if gain < need:
                failed.append(
                    f"latency improvement {gain * 100:.1f} % < {need * 100:.1f} % required "
                    f"(p50 {lat.p50:.3f} ms vs baseline {bp50:.3f} ms)"
                )
    limit = goals.size_limit
    if limit is not None and size > limit:
        failed.append(f"size {size / MB:.3f} MB ({size} B) > {limit / MB:.3f} MB allowed")
    return failed


def select(
    evaluations: Iterable[EvaluationLike],
    goals: Goals | dict[str, Any] | str | None = None,
    baseline: str | None = None,
    timings: TimingsLike | None = None,
    failures: Iterable[Failure] = (),
) -> dict[str, Any]:
    """Check every candidate against the goals and pick the best one that meets them.

    With side-by-side timings (the benchmark step's), every latency figure comes from them,
    matched to the evaluations by name: a candidate counts as faster or slower than another
    only when the interval of their paired ratio says so (:func:`kfedge.stats.compare_ratio`,
    differences under ``goals.tie_within`` are ties); candidates tied with the fastest are
    ranked by accuracy, then size; a candidate really slower than the baseline is never
    selected while the baseline meets the goals. Without timings the evaluations' single
    measurements are compared as they are (and the reason says so).

    Args:
        evaluations: Evaluations (:func:`kfedge.evaluate.evaluate`, or dicts shaped like their
            JSON), baseline included.
        goals: :class:`Goals`, a dict or JSON string (empty: no thresholds).
        baseline: Name of the baseline evaluation (default: found by :func:`find_baseline`).
        timings: The benchmark step's session (:class:`kfedge.sidebyside.SideBySide`), its
            dict or JSON file, or None.
        failures: Candidates that failed to be made or evaluated (:mod:`kfedge.failure`):
            listed under ``failed`` with their reason, never selected.

    Returns:
        ``selected`` (name or None), ``deploy`` (bool, for a ``dsl.If`` gate), ``reason`` (one
        short verdict sentence), ``evidence`` (the rows behind it: every other candidate
        against the selected one, :func:`kfedge.select_reason.selection_reason`), ``ranking``
        (names that pass, best first), ``baseline`` (name), ``goals``
        (dict), ``objective``, ``latency_source`` (``side-by-side`` / ``evaluation``),
        ``measurement`` (how latency was taken), ``candidates`` (per candidate: name, passed,
        failed_goals, accuracy_drop, latency_ratio, size_ratio, latency (figures with
        intervals and verdict), latency_tier, cpu_fallback, accuracy_test (McNemar against
        the baseline, None when they cannot be paired)), ``failed`` (per failed
        candidate: name, technique, stage, reason), ``warnings``.

    Raises:
        ConfigError: Invalid goals (before anything else).
        InvalidInputError: No evaluations, duplicate names, missing keys, or timings without
            an entry for a candidate.
    """
    g = parse_goals(goals)
    evs = as_evaluations(evaluations)
    failures = list(failures)
    sbs = load_timings(timings)
    base = find_baseline(evs, baseline, g.formats)
    figs, warnings = latency_figures(evs, base, sbs, g.tie_within)
    per: list[dict[str, Any]] = []
    for ev in evs:
        if sbs is None and ev.threads != base.threads:
            warnings.append(
                f"{ev.name} was timed with {ev.threads} threads, the baseline with "
                f"{base.threads}: latencies are not comparable"
            )
        lat = figs[ev.name]
        per.append(
            {
                "name": ev.name,
                "passed": False,
                "failed_goals": check_goals(ev, base, g, lat),
                "accuracy_drop": base.accuracy - ev.accuracy,
                "latency_ratio": lat.ratio,
                "size_ratio": ev.size_bytes / base.size_bytes if base.size_bytes else None,
                "latency": lat.to_dict(),
                "latency_tier": None,
                "cpu_fallback": lat.cpu_fallback,
            }
        )
    by_c = {c["name"]: c for c in per}
    base_goals = [f for f in by_c[base.name]["failed_goals"] if "include_baseline" not in f]
    if not base_goals:  # never deploy a candidate really slower than a baseline that qualifies
        for c in per:
            if figs[c["name"]].verdict == "slower":
                c["failed_goals"].append(
                    f"slower than the baseline {base.name} ({figs[c['name']].text}); the "
                    "baseline meets the goals, so it is deployed before anything slower"
                )
    for c in per:
        c["passed"] = not c["failed_goals"]
    by_name = {e.name: e for e in evs}
    passing = [c["name"] for c in per if c["passed"]]
    ranked = rank(passing, by_name, figs, sbs, g.objective, g.tie_within)
    ranking = ranked.ranking
    for n, t in ranked.tiers.items():
        by_c[n]["latency_tier"] = t
    for c in per:
        c["accuracy_test"] = accuracy_test(by_name[c["name"]], base)
    if ranking:
        goals_of = {c["name"]: c["failed_goals"] for c in per}
        reason, evidence = selection_reason(
            by_name, ranked, figs, base, g.objective, sbs, goals_of, g.tie_within
        )
    else:
        reason = "no candidate meets the goals: " + "; ".join(
            f"{c['name']}: {', '.join(c['failed_goals'])}" for c in per
        )
        evidence = []
    for ev in evs:
        note = int8_isa_note(ev, sbs.machine if sbs else None)
        if note and note["matches"] is False and note["reduce_range"] is False:
            warnings.append(f"{ev.name}: ONNX Runtime INT8 {note['text']}")
    return {
        "selected": ranking[0] if ranking else None,
        "deploy": bool(ranking),
        "reason": reason,
        "evidence": evidence,
        "ranking": ranking,
        "baseline": base.name,
        "goals": g.model_dump(),
        "objective": g.objective,
        "latency_source": SIDE_BY_SIDE if sbs is not None else SINGLE,
        "measurement": measurement(sbs, figs),
        "candidates": per,
        "failed": [
            {"name": f.name, "technique": f.technique, "stage": f.stage, "reason": f.reason}
            for f in failures
        ],
        "warnings": warnings,
    }


def select_from_files(
    evaluation_files: list[str | Path],
    baseline_file: str | Path,
    goals: Goals | dict[str, Any] | str | None,
    selection_path: str | Path,
    model_dirs: list[str | Path] | None = None,
    baseline_model_dir: str | Path | None = None,
    chosen_dir: str | Path | None = None,
    timings_path: str | Path | None = None,
) -> dict[str, Any]:
    """Select from evaluation files, write the selection JSON and copy the chosen model.

    This is what the KFP ``select`` component runs. Evaluations and models are paired by
    position (``evaluation_files[i]`` evaluated ``model_dirs[i]``, as ``dsl.Collected`` keeps
    the ParallelFor order); the baseline evaluation names the baseline, and an evaluation in the
    list with the same name as the baseline is taken as the same candidate.

    Args:
        evaluation_files: Evaluation JSON files of the candidates.
        baseline_file: Evaluation JSON of the baseline.
        goals: Goals (object, dict or JSON string).
        selection_path: Where to write the selection JSON.
        model_dirs: Candidate directories, one per evaluation file (optional).
        baseline_model_dir: The baseline's candidate directory (optional).
        chosen_dir: Where to copy the selected candidate directory (needs the model dirs).
        timings_path: The benchmark step's side-by-side timings JSON
            (:func:`kfedge.sidebyside.save`): every latency figure then comes from it, matched
            to the evaluations by name, with intervals (see :func:`select`); None: the
            evaluations' own single measurements.

    Returns:
        The selection as written (see :func:`select`; plus ``outputs_sample`` of the selected
        candidate, and ``chosen_dir`` when a model was copied), and for the KFP step's
        outputs: ``selection_metadata`` (selected, deploy, reason) and ``chosen_metadata``
        (the copied candidate's metadata and ``selected``; "" when none was).
    """
    from kfedge.fsutil import atomic_path, write_json_atomic, write_text_atomic

    g = parse_goals(goals)  # bad goals fail before anything is read
    if model_dirs is not None and len(model_dirs) != len(evaluation_files):
        raise InvalidInputError(
            f"got {len(evaluation_files)} evaluations but {len(model_dirs)} models; each "
            "evaluation needs the model it evaluated, in the same order"
        )
    base_failure = read_evaluation_file(baseline_file)
    if base_failure is not None:
        raise InvalidInputError(f"the baseline failed: {base_failure.text}")
    base = load_evaluation(baseline_file)
    evaluations = [base]
    failures: list[Failure] = []
    dirs: dict[str, Path | None] = {
        base.name: Path(baseline_model_dir) if baseline_model_dir else None
    }
    for i, f in enumerate(evaluation_files):
        failure = read_evaluation_file(f)
        if failure is not None:
            failures.append(failure)
            continue
        ev = load_evaluation(f)
        if ev.name == base.name:
            continue  # the baseline was also evaluated in the loop
        if ev.name in dirs:
            raise InvalidInputError(
                f"two candidates are named {ev.name!r} ({f} and an earlier one); candidate "
                "names must be unique to be compared and selected (rename one with the "
                "technique's `name` parameter or give the files different names)"
            )
        evaluations.append(ev)
        dirs[ev.name] = Path(model_dirs[i]) if model_dirs is not None else None
    check_usable(base.name, failures, len(evaluations) - 1)
    result = select(
        evaluations, g, baseline=base.name, timings=load_timings(timings_path), failures=failures
    )
    selected = result["selected"]
    chosen_ev = next((e for e in evaluations if e.name == selected), None)
    if chosen_ev is not None and chosen_ev.outputs_sample is not None:
        # the deploy step's smoke test compares the served answer with this recorded one
        result["outputs_sample"] = chosen_ev.outputs_sample.model_dump(
            mode="json", exclude_none=True
        )
    if chosen_dir is not None:
        out = Path(chosen_dir)
        src = dirs.get(selected) if selected else None
        if selected and src is None:
            raise InvalidInputError(
                f"{selected} was selected but its model directory was not given"
            )
        if src is not None:
            _copy_dir_atomic(src, out)
            result["chosen_dir"] = str(out)
            result["chosen_metadata"] = _candidate_metadata(out)
        else:
            text = "No candidate met the goals; nothing to deploy.\n" + result["reason"] + "\n"
            with atomic_path(out) as tmp:
                write_text_atomic(tmp / "NOT_SELECTED.txt", text)
    write_json_atomic(selection_path, result, sort_keys=False)
    return {
        **result,
        "selection_metadata": {
            "selected": selected or "",
            "deploy": result["deploy"],
            "reason": result["reason"],
            **({"failed": "; ".join(f.text for f in failures)} if failures else {}),
        },
        "chosen_metadata": {**result.get("chosen_metadata", {}), "selected": selected or ""},
    }


def _copy_dir_atomic(src: Path, out: Path) -> None:
    """Copy a candidate directory (or a lone model file into a new directory) to ``out``.

    The copy replaces ``out`` as a whole (:func:`kfedge.fsutil.atomic_path`), so ``out`` is
    never half-written.
    """
    from kfedge.fsutil import atomic_path

    with atomic_path(out) as tmp:
        if src.is_dir():
            shutil.copytree(src, tmp)
        else:
            tmp.mkdir()
            shutil.copy2(src, tmp / src.name)


def _candidate_metadata(directory: Path) -> dict[str, Any]:
    from kfedge.candidate import META_FILE, load_candidate

    if (directory / META_FILE).is_file():
        return load_candidate(directory).kfp_metadata()
    return {}
