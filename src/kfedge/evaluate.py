"""Evaluate one candidate: accuracy, latency, size and memory, with the runners the server uses.

Accuracy is computed by streaming a split of a split dataset through
:func:`kfedge.runners.load_runner`. Latency and peak memory are measured, by default, in a fresh
subprocess (``python -m kfedge.evaluate --latency-only ...``) that imports only the runner's
runtime: on a small shared machine a process that also holds TensorFlow's thread pools, or
another ONNX Runtime session spinning, measures contention rather than speed (ARCHITECTURE.md
§6). The candidate is timed in one block: warm-up runs first (excluded), then timed runs at
batch 1 until ``latency_runs`` or the time budget is reached (never fewer than
:data:`MIN_RUNS`), then a few runs at ``batch_size`` for throughput.

Memory is the peak resident set size (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` where
``/proc`` is absent) of the process that ran the timed inference, and the increase over the
resident size measured just before the runtime and the model were loaded.

Run it from a shell::

    python -m kfedge.evaluate MODEL DATASET [--name NAME] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from kfedge.candidate import META_FILE, load_candidate, model_path
from kfedge.data import SPLITS, iter_split, npz_shapes, read_info, split_path
from kfedge.errors import ConfigError, DataError, InvalidInputError, KfedgeError, ModelFormatError
from kfedge.formats import detect_format, model_size_bytes
from kfedge.runners import Runner, load_runner
from kfedge.weights import gzip_size, weight_stats

#: Fewest timed runs at batch 1, even when the time budget is spent.
MIN_RUNS = 30
#: Default time budget (seconds) for the timed batch-1 runs.
DEFAULT_TIME_BUDGET_S = 20.0
#: Distribution package of the runtime that runs each format (for the record).
_RUNTIME_PACKAGE = {
    "tflite": "ai-edge-litert",
    "onnx": "onnxruntime",
    "keras": "tensorflow",
    "h5": "tensorflow",
    "savedmodel": "tensorflow",
}


# -- validation ------------------------------------------------------------------------------
def _check_args(
    split: str,
    threads: int | None,
    batch_size: int,
    latency_runs: int,
    warmup: int,
    limit: int | None,
    time_budget_s: float,
) -> None:
    def _int(name: str, value: Any, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if threads is not None:
        _int("threads", threads, 1)
    _int("batch_size", batch_size, 1)
    _int("latency_runs", latency_runs, 1)
    _int("warmup", warmup, 0)
    if limit is not None:
        _int("limit", limit, 1)
    if not isinstance(time_budget_s, (int, float)) or time_budget_s <= 0:
        raise ConfigError(f"time_budget_s must be a number > 0, got {time_budget_s!r}")


def _check_runner_vs_data(runner: Runner, sample_shape: list[int], where: str) -> None:
    if len(runner.inputs) != 1:
        raise ModelFormatError(
            f"evaluation needs a model with one input (an image batch); {runner.path} has "
            f"{len(runner.inputs)} inputs {[s.name for s in runner.inputs]}"
        )
    spec = runner.inputs[0]
    want = list(spec.shape[1:])
    if len(want) != len(sample_shape) or any(
        w is not None and w != g for w, g in zip(want, sample_shape, strict=True)
    ):
        shown = [-1 if d is None else d for d in want]
        raise DataError(
            f"{where}: samples have shape {sample_shape}, but the model input '{spec.name}' "
            f"expects {shown} per sample"
        )


# -- memory ----------------------------------------------------------------------------------
def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # kB -> MiB
    except OSError:
        return None
    return None


def _rss_mb() -> float | None:
    return _proc_status_mb("VmRSS")


def _peak_rss_mb() -> tuple[float, str]:
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kB, macOS bytes.
    return (peak / 1024.0**2 if sys.platform == "darwin" else peak / 1024.0), "ru_maxrss"


# -- latency ---------------------------------------------------------------------------------
def _percentiles(times_ms: np.ndarray) -> dict[str, float]:
    return {
        "p50": float(np.percentile(times_ms, 50)),
        "p90": float(np.percentile(times_ms, 90)),
        "p99": float(np.percentile(times_ms, 99)),
        "mean": float(times_ms.mean()),
        "std": float(times_ms.std(ddof=1)) if len(times_ms) > 1 else 0.0,
        "min": float(times_ms.min()),
        "max": float(times_ms.max()),
    }


def measure_latency(
    runner: Runner,
    batch: np.ndarray,
    latency_runs: int = 200,
    warmup: int = 20,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> dict[str, Any]:
    """Time one runner in a block: warm-up, batch-1 runs, then batch-N throughput.

    Args:
        runner: An open runner.
        batch: Samples to run (batch first); its first sample is the batch-1 input and the whole
            array the batch-N input.
        latency_runs: Timed batch-1 runs wanted.
        warmup: Untimed runs first (batch 1, plus one at batch N).
        time_budget_s: Stop the batch-1 runs after this many seconds, but only after
            :data:`MIN_RUNS` runs.

    Returns:
        ``{"latency_ms": {...}, "throughput": {...}, "threads": n}``.
    """
    one = batch[:1]
    n = len(batch)
    for _ in range(warmup):
        runner.predict(one)
    min_runs = min(latency_runs, MIN_RUNS)
    times: list[int] = []
    deadline = time.perf_counter() + time_budget_s
    for i in range(latency_runs):
        t0 = time.perf_counter_ns()
        runner.predict(one)
        times.append(time.perf_counter_ns() - t0)
        if i + 1 >= min_runs and time.perf_counter() > deadline:
            break
    t1 = np.asarray(times, dtype=np.float64) / 1e6
    latency = {**_percentiles(t1), "runs": len(times), "batch": 1, "warmup": warmup}

    runner.predict(batch)  # warm up the batch-N shape (TFLite reallocates)
    runs_n = max(3, min(20, latency_runs // 10))
    times_n: list[int] = []
    deadline_n = time.perf_counter() + max(1.0, time_budget_s / 4)
    for i in range(runs_n):
        t0 = time.perf_counter_ns()
        runner.predict(batch)
        times_n.append(time.perf_counter_ns() - t0)
        if i + 1 >= 3 and time.perf_counter() > deadline_n:
            break
    tn = np.asarray(times_n, dtype=np.float64) / 1e6
    throughput = {
        "batch_1": 1000.0 / float(np.median(t1)),
        "batch_N": n * 1000.0 / float(np.median(tn)),
        "batch_size": n,
        "batch_N_ms_p50": float(np.median(tn)),
        "batch_N_runs": len(times_n),
    }
    return {"latency_ms": latency, "throughput": throughput, "threads": runner.threads}


def _latency_batch(dataset: str | Path, split: str, batch_size: int) -> np.ndarray:
    batch = next(iter_split(dataset, split, batch_size))[0]
    if len(batch) < batch_size:  # a split smaller than the batch: repeat its samples
        reps = -(-batch_size // len(batch))
        batch = np.concatenate([batch] * reps)[:batch_size]
    return np.ascontiguousarray(batch)


def latency_only(
    model: str | Path,
    dataset: str | Path,
    split: str = "eval",
    threads: int | None = None,
    batch_size: int = 32,
    latency_runs: int = 200,
    warmup: int = 20,
    providers: list[str] | None = None,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> dict[str, Any]:
    """Load a model and time it in THIS process, recording its memory (the isolated child's job).

    Args:
        model: Model file or candidate directory.
        dataset: Split dataset directory (or .npz) whose first samples are the input.
        split: Split to take the samples from.
        threads: Inference threads (default: runner default).
        batch_size: Batch for the throughput runs.
        latency_runs: Timed batch-1 runs.
        warmup: Untimed runs first.
        providers: ONNX Runtime providers.
        time_budget_s: Time budget of the batch-1 runs.

    Returns:
        Latency, throughput, threads, memory and the runner's description.
    """
    path = model_path(model)
    batch = _latency_batch(dataset, split, batch_size)
    rss_before = _rss_mb()
    runner = load_runner(path, threads=threads, providers=providers, spinning=False)
    try:
        rss_loaded = _rss_mb()
        _check_runner_vs_data(runner, list(batch.shape[1:]), str(dataset))
        time.sleep(0.2)  # a short pause so that no earlier work overlaps the block
        result = measure_latency(runner, batch, latency_runs, warmup, time_budget_s)
        peak, method = _peak_rss_mb()
        result["memory"] = {
            "peak_rss_mb": round(peak, 2),
            "rss_before_load_mb": None if rss_before is None else round(rss_before, 2),
            "rss_after_load_mb": None if rss_loaded is None else round(rss_loaded, 2),
            "peak_rss_delta_mb": None if rss_before is None else round(peak - rss_before, 2),
            "method": method,
        }
        result["runtime"] = runner.describe()
        # Recorded so a reader (and the tests) can check the timing process held no TensorFlow.
        result["memory"]["tensorflow_loaded"] = "tensorflow" in sys.modules
    finally:
        runner.close()
    return result


def _latency_isolated(
    path: Path,
    dataset: str | Path,
    split: str,
    threads: int | None,
    batch_size: int,
    latency_runs: int,
    warmup: int,
    providers: list[str] | None,
    time_budget_s: float,
) -> dict[str, Any]:
    src_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="kfedge-latency-") as tmp:
        out = Path(tmp) / "latency.json"
        cmd = [
            sys.executable,
            "-m",
            "kfedge.evaluate",
            "--latency-only",
            str(path),
            str(dataset),
            "--split",
            split,
            "--batch-size",
            str(batch_size),
            "--runs",
            str(latency_runs),
            "--warmup",
            str(warmup),
            "--time-budget",
            str(time_budget_s),
            "--json",
            str(out),
        ]
        if threads:
            cmd += ["--threads", str(threads)]
        for p in providers or []:
            cmd += ["--provider", p]
        timeout = 120 + 4 * time_budget_s
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise KfedgeError(
                f"latency measurement of {path} did not finish within {timeout:.0f} s"
            ) from exc
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
            msg = lines[-1] if lines else f"exit code {proc.returncode}"
            raise KfedgeError(f"latency measurement of {path} failed in its subprocess: {msg}")
        result = json.loads(out.read_text())
    result["memory"]["isolated"] = True
    return result


# -- accuracy --------------------------------------------------------------------------------
def _accuracy(
    runner: Runner,
    dataset: str | Path,
    split: str,
    batch_size: int,
    limit: int | None,
    num_classes: int,
) -> dict[str, Any]:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    top5_hits = 0
    seen = 0
    first: np.ndarray | None = None
    where = str(split_path(dataset, split))
    for bx, by in iter_split(dataset, split, batch_size):
        if limit is not None:
            bx, by = bx[: limit - seen], by[: limit - seen]
        if len(bx) == 0:
            break
        if by.min() < 0 or by.max() >= num_classes:
            raise DataError(
                f"{where}: labels must lie in [0, {num_classes}) (the model's classes), found "
                f"range [{by.min()}, {by.max()}]"
            )
        out = np.asarray(runner.predict(bx), dtype=np.float64).reshape(len(bx), -1)
        if first is None:
            # recorded from a batch-1 run, as the deploy smoke test sends it: some runtimes
            # (ORT dynamic quantization) scale activations per batch
            first = np.asarray(runner.predict(bx[:1]), dtype=np.float64).reshape(-1)
        pred = out.argmax(axis=1)
        np.add.at(cm, (by, pred), 1)
        if num_classes >= 10:
            top5 = np.argsort(-out, axis=1, kind="stable")[:, :5]
            top5_hits += int(np.sum(top5 == by[:, None]))
        seen += len(bx)
        if limit is not None and seen >= limit:
            break
    if seen == 0:
        raise DataError(f"{where}: the split is empty (expected at least one sample)")
    diag = np.diag(cm).astype(np.float64)
    col = cm.sum(axis=0).astype(np.float64)
    row = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(diag, col, out=np.zeros_like(diag), where=col > 0)
    recall = np.divide(diag, row, out=np.zeros_like(diag), where=row > 0)
    assert first is not None
    return {
        "num_samples": seen,
        "accuracy": float(diag.sum() / seen),
        "top5": float(top5_hits / seen) if num_classes >= 10 else None,
        "per_class": {
            "precision": [round(float(v), 6) for v in precision],
            "recall": [round(float(v), 6) for v in recall],
            "support": [int(v) for v in row],
        },
        "confusion_matrix": cm.tolist(),
        "outputs_sample": {
            "index": 0,
            "split": split,
            "output_name": runner.outputs[0].name,
            "values": [float(v) for v in first],
        },
    }


# -- machine ---------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """Architecture, CPU model, core count, OS and Python of the measuring machine."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "arch": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _runtime_version(fmt: str) -> str:
    try:
        return importlib_metadata.version(_RUNTIME_PACKAGE.get(fmt, ""))
    except importlib_metadata.PackageNotFoundError:
        return ""


# -- the public entry point ------------------------------------------------------------------
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
) -> dict[str, Any]:
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
        A JSON-serialisable dict: identity (name, technique, format, path, parent, params),
        accuracy (num_samples, accuracy, top5, per_class, confusion_matrix, classes),
        latency_ms, throughput, threads, size (size_bytes, size_gzip_bytes, params_count,
        sparsity, unique_weights), memory (peak_rss_mb and details), outputs_sample, runtime,
        machine.

    Raises:
        ConfigError: A bad argument (checked before any model is loaded).
        DataError: The dataset does not fit the model (shape, classes, labels) or is empty.
        ModelFormatError: The model cannot be read.
    """
    _check_args(split, threads, batch_size, latency_runs, warmup, limit, time_budget_s)
    src = Path(model)
    path = model_path(src)
    fmt = detect_format(path)
    cand = load_candidate(src) if src.is_dir() and (src / META_FILE).is_file() else None

    data_file = split_path(dataset, split)
    shapes = npz_shapes(data_file)
    sample_shape = [int(d) for d in shapes["x"][0][1:]]
    if shapes["x"][0][0] == 0:
        raise DataError(f"{data_file}: the split is empty (expected at least one sample)")
    classes: list[str] | None = None
    if Path(dataset).is_dir():
        info = read_info(dataset)
        classes = list(info.classes)
        if info.input_shape and list(info.input_shape) != sample_shape:
            raise DataError(
                f"{dataset}: dataset.json says samples are {info.input_shape}, but "
                f"{data_file.name} holds {sample_shape}"
            )

    started = time.time()
    runner = load_runner(path, threads=threads, providers=providers, spinning=False)
    try:
        _check_runner_vs_data(runner, sample_shape, str(data_file))
        out_shape = runner.outputs[0].shape
        num_out = out_shape[-1] if len(out_shape) >= 2 else None
        if classes is not None and num_out is not None and num_out != len(classes):
            raise DataError(
                f"{dataset} has {len(classes)} classes, but the model output "
                f"'{runner.outputs[0].name}' has {num_out} values per sample"
            )
        if num_out is None and classes is None:
            raise ModelFormatError(
                f"{path}: cannot tell the number of classes (output shape "
                f"{[-1 if d is None else d for d in out_shape]}) and the dataset has no "
                "dataset.json naming them"
            )
        n_classes = int(num_out if num_out is not None else len(classes or []))
        acc = _accuracy(runner, dataset, split, batch_size, limit, n_classes)
        describe = runner.describe()
        if isolate:
            runner.close()
            del runner
            runner = None  # type: ignore[assignment]
            lat = _latency_isolated(
                path,
                dataset,
                split,
                threads,
                batch_size,
                latency_runs,
                warmup,
                providers,
                time_budget_s,
            )
        else:
            batch = _latency_batch(dataset, split, batch_size)
            lat = measure_latency(runner, batch, latency_runs, warmup, time_budget_s)
            peak, method = _peak_rss_mb()
            lat["memory"] = {
                "peak_rss_mb": round(peak, 2),
                "peak_rss_delta_mb": None,
                "method": f"{method} of the evaluating process (not isolated: includes "
                "everything that process loaded)",
                "isolated": False,
            }
            lat["runtime"] = describe
    finally:
        if runner is not None:
            runner.close()

    weights = weight_stats(path)
    technique = cand.technique if cand else ("baseline" if fmt in ("keras", "h5") else "unknown")
    result: dict[str, Any] = {
        "name": name or (cand.name if cand else path.stem if path.is_file() else path.name),
        "technique": technique,
        "format": fmt,
        "path": str(src),
        "model_file": str(path),
        "parent": cand.parent if cand else None,
        "params": cand.params if cand else {},
        "candidate_stats": cand.stats if cand else {},
        "split": split,
        "classes": classes if classes is not None else [str(i) for i in range(n_classes)],
        **{k: acc[k] for k in ("num_samples", "accuracy", "top5", "per_class")},
        "confusion_matrix": acc["confusion_matrix"],
        "latency_ms": lat["latency_ms"],
        "throughput": lat["throughput"],
        "threads": lat["threads"],
        "size_bytes": model_size_bytes(path),
        "size_gzip_bytes": gzip_size(path),
        "params_count": weights["params_count"],
        "sparsity": weights["sparsity"],
        "sparsity_per_layer": weights["sparsity_per_layer"],
        "unique_weights": weights["unique_weights"],
        "kernel_weights": weights["kernel_weights"],
        "peak_rss_mb": lat["memory"]["peak_rss_mb"],
        "memory": lat["memory"],
        "outputs_sample": acc["outputs_sample"],
        "runtime": {**lat["runtime"], "version": _runtime_version(fmt)},
        "machine": machine_info(),
        "isolated": isolate,
        "seconds": round(time.time() - started, 2),
    }
    return result


def save_evaluation(result: dict[str, Any], path: str | Path) -> Path:
    """Write an evaluation result as JSON, atomically.

    Args:
        result: The dict :func:`evaluate` returned.
        path: Destination file.

    Returns:
        The written path.
    """
    from kfedge.convert import write_atomic

    return write_atomic(path, json.dumps(result, indent=2, sort_keys=True).encode())


def load_evaluation(path: str | Path) -> dict[str, Any]:
    """Read an evaluation JSON and check it has the keys the report and selection need.

    Args:
        path: A file written by :func:`save_evaluation`.

    Returns:
        The evaluation dict.

    Raises:
        InvalidInputError: Not JSON, or not an evaluation.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"evaluation file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{p} is not an evaluation JSON file: {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise InvalidInputError(f"{p} is not a kfedge evaluation: missing keys {missing}")
    return data


#: Keys every evaluation has (checked by :func:`load_evaluation` and the selection).
REQUIRED_KEYS = ("name", "technique", "format", "accuracy", "latency_ms", "size_bytes")


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
    ap.add_argument("--split", default="eval", choices=SPLITS)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--runs", type=int, default=200, help="timed batch-1 runs")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET_S)
    ap.add_argument("--provider", action="append", default=None, help="ONNX Runtime provider")
    ap.add_argument("--no-isolate", action="store_true", help="time in this process")
    ap.add_argument("--latency-only", action="store_true", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a kfedge error)."""
    args = _parser().parse_args(argv)
    try:
        if args.latency_only:
            _check_args(
                args.split, args.threads, args.batch_size, args.runs, args.warmup, None, 1.0
            )
            result = latency_only(
                args.model,
                args.dataset,
                args.split,
                args.threads,
                args.batch_size,
                args.runs,
                args.warmup,
                args.provider,
                args.time_budget,
            )
        else:
            result = evaluate(
                args.model,
                args.dataset,
                name=args.name,
                split=args.split,
                threads=args.threads,
                batch_size=args.batch_size,
                latency_runs=args.runs,
                warmup=args.warmup,
                providers=args.provider,
                isolate=not args.no_isolate,
                limit=args.limit,
                time_budget_s=args.time_budget,
            )
    except KfedgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        save_evaluation(result, args.json)
    else:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def kfp_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics of an evaluation, as logged to a KFP ``Metrics`` artifact.

    Args:
        result: An evaluation result.

    Returns:
        accuracy, top5 (when measured), latency p50/p90/p99 (ms), size and gzip size (MB,
        1 MB = 1,000,000 bytes), sparsity, throughput at batch 1 and N, peak RSS (MiB).
    """
    lat, thr = result["latency_ms"], result["throughput"]
    out = {
        "accuracy": float(result["accuracy"]),
        "latency_p50_ms": float(lat["p50"]),
        "latency_p90_ms": float(lat["p90"]),
        "latency_p99_ms": float(lat["p99"]),
        "size_mb": result["size_bytes"] / 1e6,
        "gzip_mb": result["size_gzip_bytes"] / 1e6,
        "sparsity": float(result["sparsity"]),
        "throughput_batch_1": float(thr["batch_1"]),
        "throughput_batch_n": float(thr["batch_N"]),
        "peak_rss_mb": float(result["peak_rss_mb"]),
    }
    if result.get("top5") is not None:
        out["top5"] = float(result["top5"])
    return out
