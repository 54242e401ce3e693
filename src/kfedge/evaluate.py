"""Evaluate one candidate: accuracy, latency, size and memory, with the runners the server uses.

This module orchestrates; each measurement has its own module:

* :mod:`kfedge.accuracy` streams a split through :func:`kfedge.runners.load_runner` and scores it;
* :mod:`kfedge.timing` times the candidate (by default in a fresh subprocess that imports only
  the runner's runtime) and records peak memory;
* :mod:`kfedge.weights` counts parameters, kernel sparsity and unique weights, and gzip size;
* :mod:`kfedge.evaluation` holds the typed result (:class:`~kfedge.evaluation.Evaluation`) and
  its JSON file.

Run it from a shell::

    python -m kfedge.evaluate MODEL DATASET [--name NAME] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from kfedge.accuracy import num_classes, score
from kfedge.candidate import META_FILE, load_candidate, model_path
from kfedge.data import DatasetInfo, npz_shapes, read_info, split_path
from kfedge.errors import DataError, DependencyError, KfedgeError
from kfedge.evaluation import (
    REQUIRED_KEYS,
    Evaluation,
    kfp_metrics,
    load_evaluation,
    save_evaluation,
)
from kfedge.failure import Failure, one_line, read_failed_candidate
from kfedge.formats import detect_format, model_size_bytes
from kfedge.fsutil import write_json_atomic
from kfedge.runners import load_runner
from kfedge.timing import (
    DEFAULT_TIME_BUDGET_S,
    MIN_RUNS,
    TimingOptions,
    add_timing_options,
    check_int,
    check_runner_input,
    latency_only,
    machine,
    machine_info,
    measure_latency,
    runtime_version,
    time_in_process,
    time_isolated,
)
from kfedge.weights import gzip_size, weight_stats

__all__ = [
    "DEFAULT_TIME_BUDGET_S",
    "MIN_RUNS",
    "REQUIRED_KEYS",
    "Evaluation",
    "TimingOptions",
    "evaluate",
    "evaluate_from_files",
    "gzip_size",
    "kfp_metrics",
    "latency_only",
    "load_evaluation",
    "machine_info",
    "main",
    "measure_latency",
    "save_evaluation",
    "weight_stats",
]


def _sample_shape(dataset: str | Path, split: str) -> tuple[list[int], DatasetInfo | None]:
    """Per-sample shape of the split, checked against dataset.json when there is one."""
    data_file = split_path(dataset, split)
    shapes = npz_shapes(data_file)
    sample_shape = [int(d) for d in shapes["x"][0][1:]]
    if shapes["x"][0][0] == 0:
        raise DataError(f"{data_file}: the split is empty (expected at least one sample)")
    info = read_info(dataset) if Path(dataset).is_dir() else None
    if info is not None and info.input_shape and list(info.input_shape) != sample_shape:
        raise DataError(
            f"{dataset}: dataset.json says samples are {info.input_shape}, but "
            f"{data_file.name} holds {sample_shape}"
        )
    return sample_shape, info


def evaluate(
    model: str | Path,
    dataset: str | Path,
    name: str | None = None,
    split: str = "eval",
    threads: int | None = None,
    batch_size: int = 32,
    latency_runs: int = 200,
    warmup: int = 20,
    providers: list[str] | None = None,
    isolate: bool = True,
    limit: int | None = None,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> Evaluation:
    """Measure accuracy, latency, size and memory of one candidate.

    Args:
        model: A candidate directory or a model file (.keras/.h5, SavedModel, .tflite, .onnx).
        dataset: A split dataset directory (or a single .npz with ``x`` and ``y``).
        name: Name in the result (default: the candidate's name, else the file stem).
        split: Which split to score (``eval`` by default).
        threads: Inference threads (default: ``KFEDGE_THREADS`` or all cores).
        batch_size: Batch for the accuracy pass and the throughput measurement.
        latency_runs: Timed batch-1 runs (adaptive: stops after ``time_budget_s`` but not
            before :data:`MIN_RUNS` runs).
        warmup: Untimed runs before timing.
        providers: ONNX Runtime execution providers (dropped where this build lacks them).
        isolate: Time in a fresh subprocess that imports only the runner's runtime (default);
            ``False`` times in this process (faster, but distorted where TensorFlow is loaded).
        limit: Score only the first ``limit`` samples of the split.
        time_budget_s: Time budget of the timed batch-1 runs.

    Returns:
        The :class:`~kfedge.evaluation.Evaluation`: identity (name, technique, format, path,
        parent, params), accuracy (num_samples, accuracy, top5, per_class, confusion_matrix,
        classes), latency_ms, throughput, threads, size (size_bytes, size_gzip_bytes,
        params_count, sparsity, unique_weights), memory (peak_rss_mb and details),
        outputs_sample, runtime, machine.

    Raises:
        ConfigError: A bad argument (checked before any model is loaded).
        DataError: The dataset does not fit the model (shape, classes, labels) or is empty.
        ModelFormatError: The model cannot be read.
    """
    opts = TimingOptions(split, threads, batch_size, latency_runs, warmup, providers, time_budget_s)
    opts.check()
    if limit is not None:
        check_int("limit", limit, 1)
    src = Path(model)
    path = model_path(src)
    fmt = detect_format(path)
    cand = load_candidate(src) if src.is_dir() and (src / META_FILE).is_file() else None
    sample_shape, info = _sample_shape(dataset, split)

    started = time.time()
    runner = load_runner(path, threads=threads, providers=providers, spinning=False)
    try:
        check_runner_input(runner, sample_shape, str(split_path(dataset, split)))
        n_classes = num_classes(runner, dataset, info)
        scores = score(runner, dataset, split, batch_size, limit, n_classes)
        if not isolate:
            timing = time_in_process(runner, dataset, opts)
    finally:
        runner.close()
    if isolate:
        timing = time_isolated(path, dataset, opts)
    assert timing.memory is not None and timing.runtime is not None
    runtime = timing.runtime
    runtime.version = runtime_version(fmt)

    extra: dict[str, str] = {}  # set only when it applies: other evaluations' JSON unchanged
    try:
        weights = weight_stats(path)
    except DependencyError as exc:  # e.g. no `onnx` on an edge node with kfedge[serving]
        weights = dict.fromkeys(("params_count", "sparsity", "kernel_weights"))
        weights |= {"sparsity_per_layer": {}, "unique_weights": {}}
        extra["weights_unavailable"] = f"weight statistics skipped: {exc}"
    technique = cand.technique if cand else ("baseline" if fmt in ("keras", "h5") else "unknown")
    return Evaluation(
        **extra,
        name=name or (cand.name if cand else path.stem if path.is_file() else path.name),
        technique=technique,
        format=fmt,
        path=str(src),
        model_file=str(path),
        parent=cand.parent if cand else None,
        params=cand.params if cand else {},
        candidate_stats=cand.stats if cand else {},
        split=split,
        classes=list(info.classes) if info else [str(i) for i in range(n_classes)],
        num_samples=scores.num_samples,
        accuracy=scores.accuracy,
        top5=scores.top5,
        per_class=scores.per_class,
        confusion_matrix=scores.confusion_matrix,
        latency_ms=timing.latency_ms,
        throughput=timing.throughput,
        threads=timing.threads,
        size_bytes=model_size_bytes(path),
        size_gzip_bytes=gzip_size(path),
        params_count=weights["params_count"],
        sparsity=weights["sparsity"],
        sparsity_per_layer=weights["sparsity_per_layer"],
        unique_weights=weights["unique_weights"],
        kernel_weights=weights["kernel_weights"],
        peak_rss_mb=timing.memory.peak_rss_mb,
        memory=timing.memory,
        outputs_sample=scores.outputs_sample,
        sample_correct=scores.sample_correct,
        runtime=runtime,
        machine=machine(),
        isolated=isolate,
        seconds=round(time.time() - started, 2),
    )


def evaluate_from_files(
    model_dir: str | Path,
    dataset_dir: str | Path,
    evaluation_path: str | Path,
    *,
    name: str = "",
    threads: int = 0,
    batch_size: int = 32,
    latency_runs: int = 200,
    target: str = "",
) -> Evaluation | Failure:
    """Evaluate a candidate for a target and write the evaluation JSON (the KFP step's body).

    A failed candidate (:mod:`kfedge.failure`) is passed on as a failed evaluation, and an
    evaluation that raises is recorded as one (its one-line reason), so one candidate never
    fails the pipeline's loop; select fails the run when the baseline failed.

    Args:
        model_dir: The candidate directory (or a model file).
        dataset_dir: The split dataset (its eval split is scored).
        evaluation_path: Where to write the evaluation JSON.
        name: Name in the report ("" = the candidate's name).
        threads: Inference threads (0 = the target's, else the node's default).
        batch_size: Batch of the accuracy pass and the throughput measurement.
        latency_runs: Timed batch-1 runs (adaptive, at least :data:`MIN_RUNS`).
        target: Target profile ("" = none): its ONNX Runtime providers and thread count are
            used, and its name is recorded in ``target``.

    Returns:
        The evaluation (or failure) as written; ``kfp_metrics()`` and ``kfp_metadata()`` give
        the step's metrics and the artifact's metadata.
    """
    failure = read_failed_candidate(model_dir) if Path(model_dir).is_dir() else None
    if failure is None:
        try:
            return _evaluate_and_save(
                model_dir, dataset_dir, evaluation_path, name, threads, batch_size,
                latency_runs, target,
            )  # fmt: skip
        except Exception as exc:
            failure = Failure(
                name=name or _candidate_name(model_dir),
                technique=_candidate_technique(model_dir),
                reason=one_line(exc),
                stage="evaluate",
            )
            print(f"[kfedge] {failure.text}; the run goes on without it", file=sys.stderr)
    write_json_atomic(evaluation_path, failure.to_dict())
    return failure


def _candidate_name(model_dir: str | Path) -> str:
    try:
        return load_candidate(model_dir).name
    except Exception:  # noqa: BLE001 - not a candidate directory: its file name
        return Path(model_dir).stem


def _candidate_technique(model_dir: str | Path) -> str:
    try:
        return load_candidate(model_dir).technique
    except Exception:  # noqa: BLE001 - not a candidate directory
        return "unknown"


def _evaluate_and_save(
    model_dir: str | Path,
    dataset_dir: str | Path,
    evaluation_path: str | Path,
    name: str,
    threads: int,
    batch_size: int,
    latency_runs: int,
    target: str,
) -> Evaluation:
    providers = None
    if target:
        from kfedge.targets import load_target

        profile = load_target(target)
        providers = list(profile.onnx_providers)
        threads = threads or profile.threads or 0
    ev = evaluate(
        model_dir,
        dataset_dir,
        name=name or None,
        threads=threads or None,
        batch_size=batch_size,
        latency_runs=latency_runs,
        providers=providers,
    )
    ev.target = target or None
    save_evaluation(ev, evaluation_path)
    return ev


# -- CLI -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m kfedge.evaluate",
        description="Evaluate a model or candidate: accuracy, latency, size, memory.",
    )
    ap.add_argument("model", help="candidate directory or model file")
    ap.add_argument("dataset", help="split dataset directory (or .npz)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--json", default=None, help="write the result here (default: stdout)")
    add_timing_options(ap)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-isolate", action="store_true", help="time in this process")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a kfedge error)."""
    args = _parser().parse_args(argv)
    try:
        opts = asdict(TimingOptions.from_args(args))
        ev = evaluate(
            args.model,
            args.dataset,
            name=args.name,
            isolate=not args.no_isolate,
            limit=args.limit,
            **opts,
        )
    except KfedgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        save_evaluation(ev, args.json)
    else:
        print(ev.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
