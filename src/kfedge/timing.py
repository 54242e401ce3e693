"""Time one candidate: batch-1 latency, throughput and peak memory, by default in a fresh process.

Latency and peak memory are measured, by default, in a fresh subprocess
(``python -m kfedge.timing ...``) that imports only the runner's runtime: on a small shared
machine a process that also holds TensorFlow's thread pools, or another ONNX Runtime session
spinning, measures contention rather than speed. The candidate is timed in one block: warm-up
runs first (excluded), then timed runs at batch 1 until ``latency_runs`` or the time budget is
reached (never fewer than :data:`MIN_RUNS`), then a few runs at ``batch_size`` for throughput.

Memory is the peak resident set size (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss`` where
``/proc`` is absent) of the process that ran the timed inference, and the increase over the
resident size measured just before the runtime and the model were loaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from kfedge.candidate import model_path
from kfedge.data import SPLITS, iter_split
from kfedge.errors import ConfigError, DataError, KfedgeError, ModelFormatError
from kfedge.evaluation import LatencyStats, Machine, Memory, Runtime, Throughput, Timing
from kfedge.runners import Runner, load_runner

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
    "openvino": "openvino",
}


# -- validation ------------------------------------------------------------------------------
def check_int(name: str, value: Any, low: int) -> None:
    """Refuse ``value`` unless it is an integer (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class TimingOptions:
    """How a candidate is timed (the same in this process and in the isolated child).

    Attributes:
        split: Split whose first samples are the input.
        threads: Inference threads (None: the runner's default, ``KFEDGE_THREADS`` or all cores).
        batch_size: Batch of the throughput runs.
        latency_runs: Timed batch-1 runs wanted (at least :data:`MIN_RUNS` are made).
        warmup: Untimed runs first.
        providers: ONNX Runtime execution providers (None: CPU).
        time_budget_s: Stop the batch-1 runs after this many seconds (past the minimum).
    """

    split: str = "eval"
    threads: int | None = None
    batch_size: int = 32
    latency_runs: int = 200
    warmup: int = 20
    providers: list[str] | None = None
    time_budget_s: float = DEFAULT_TIME_BUDGET_S

    def check(self) -> TimingOptions:
        """Refuse bad options before any model is loaded; returns itself.

        Raises:
            ConfigError: The first bad option, with what was expected.
        """
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("latency_runs", self.latency_runs, 1)
        check_int("warmup", self.warmup, 0)
        budget = self.time_budget_s
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
            raise ConfigError(f"time_budget_s must be a number > 0, got {budget!r}")
        return self

    def to_argv(self) -> list[str]:
        """The options as command line flags (:func:`add_timing_options` reads them back)."""
        argv = ["--split", self.split, "--batch-size", str(self.batch_size)]
        argv += ["--runs", str(self.latency_runs), "--warmup", str(self.warmup)]
        argv += ["--time-budget", str(self.time_budget_s)]
        if self.threads:
            argv += ["--threads", str(self.threads)]
        for p in self.providers or []:
            argv += ["--provider", p]
        return argv

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TimingOptions:
        """The options parsed by a parser :func:`add_timing_options` set up."""
        return cls(
            split=args.split,
            threads=args.threads,
            batch_size=args.batch_size,
            latency_runs=args.runs,
            warmup=args.warmup,
            providers=args.provider,
            time_budget_s=args.time_budget,
        )


def check_runner_input(runner: Runner, sample_shape: list[int], where: str) -> None:
    """Check that the model takes one input whose per-sample shape is ``sample_shape``.

    Raises:
        ModelFormatError: The model has several inputs.
        DataError: The samples' shape does not fit the model input.
    """
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


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def peak_memory(
    isolated: bool, rss_before: float | None = None, rss_loaded: float | None = None
) -> Memory:
    """The peak resident memory of this process so far.

    Args:
        isolated: Whether this process was started only to time the candidate.
        rss_before: Resident MiB before the runtime and model were loaded (isolated only).
        rss_loaded: Resident MiB after loading (isolated only).

    Returns:
        The memory record; when not isolated, ``method`` says the peak includes everything the
        process loaded.
    """
    peak, method = _peak_rss_mb()
    if not isolated:
        return Memory(
            peak_rss_mb=round(peak, 2),
            peak_rss_delta_mb=None,
            method=f"{method} of the evaluating process (not isolated: includes everything "
            "that process loaded)",
            isolated=False,
        )
    return Memory(
        peak_rss_mb=round(peak, 2),
        rss_before_load_mb=_round(rss_before),
        rss_after_load_mb=_round(rss_loaded),
        peak_rss_delta_mb=_round(None if rss_before is None else peak - rss_before),
        method=method,
        isolated=True,
        # recorded so a reader (and the tests) can check the timing process held no TensorFlow
        tensorflow_loaded="tensorflow" in sys.modules,
    )


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


def _timed(runner: Runner, x: np.ndarray, runs: int, min_runs: int, budget_s: float) -> np.ndarray:
    """Run ``x`` up to ``runs`` times (at least ``min_runs``, then until the budget); ms each."""
    times: list[int] = []
    deadline = time.perf_counter() + budget_s
    for i in range(runs):
        t0 = time.perf_counter_ns()
        runner.predict(x)
        times.append(time.perf_counter_ns() - t0)
        if i + 1 >= min_runs and time.perf_counter() > deadline:
            break
    return np.asarray(times, dtype=np.float64) / 1e6


def measure_latency(
    runner: Runner,
    batch: np.ndarray,
    latency_runs: int = 200,
    warmup: int = 20,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> Timing:
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
        The latency distribution, throughput and threads (no memory, no runtime yet).
    """
    one = batch[:1]
    for _ in range(warmup):
        runner.predict(one)
    t1 = _timed(runner, one, latency_runs, min(latency_runs, MIN_RUNS), time_budget_s)
    runner.predict(batch)  # warm up the batch-N shape (TFLite reallocates)
    runs_n = max(3, min(20, latency_runs // 10))
    tn = _timed(runner, batch, runs_n, 3, max(1.0, time_budget_s / 4))
    return Timing(
        latency_ms=LatencyStats(**_percentiles(t1), runs=len(t1), batch=1, warmup=warmup),
        throughput=Throughput(
            batch_1=1000.0 / float(np.median(t1)),
            batch_N=len(batch) * 1000.0 / float(np.median(tn)),
            batch_size=len(batch),
            batch_N_ms_p50=float(np.median(tn)),
            batch_N_runs=len(tn),
        ),
        threads=runner.threads,
    )


def latency_batch(dataset: str | Path, split: str, batch_size: int) -> np.ndarray:
    """The first ``batch_size`` samples of a split (repeated when the split is smaller)."""
    batch = next(iter_split(dataset, split, batch_size))[0]
    if len(batch) < batch_size:  # a split smaller than the batch: repeat its samples
        reps = -(-batch_size // len(batch))
        batch = np.concatenate([batch] * reps)[:batch_size]
    return np.ascontiguousarray(batch)


def time_in_process(
    runner: Runner, dataset: str | Path, opts: TimingOptions = TimingOptions()
) -> Timing:
    """Time an open runner in this process (faster, distorted where TensorFlow is loaded).

    Returns:
        The timing, with this process's peak memory (not isolated) and the runner's
        description.
    """
    batch = latency_batch(dataset, opts.split, opts.batch_size)
    timing = measure_latency(runner, batch, opts.latency_runs, opts.warmup, opts.time_budget_s)
    timing.memory = peak_memory(isolated=False)
    timing.runtime = Runtime.model_validate(runner.describe())
    return timing


def latency_only(
    model: str | Path, dataset: str | Path, opts: TimingOptions = TimingOptions()
) -> Timing:
    """Load a model and time it in THIS process, recording its memory (the isolated child's job).

    Args:
        model: Model file or candidate directory.
        dataset: Split dataset directory (or .npz) whose first samples are the input.
        opts: How to time it.

    Returns:
        Latency, throughput, threads, memory (isolated) and the runner's description.
    """
    path = model_path(model)
    batch = latency_batch(dataset, opts.split, opts.batch_size)
    rss_before = _rss_mb()
    runner = load_runner(path, threads=opts.threads, providers=opts.providers, spinning=False)
    try:
        rss_loaded = _rss_mb()
        check_runner_input(runner, list(batch.shape[1:]), str(dataset))
        time.sleep(0.2)  # a short pause so that no earlier work overlaps the block
        timing = measure_latency(runner, batch, opts.latency_runs, opts.warmup, opts.time_budget_s)
        timing.memory = peak_memory(True, rss_before, rss_loaded)
        timing.runtime = Runtime.model_validate(runner.describe())
    finally:
        runner.close()
    return timing


def time_isolated(path: Path, dataset: str | Path, opts: TimingOptions = TimingOptions()) -> Timing:
    """Time a model in a fresh ``python -m kfedge.timing`` subprocess (see :func:`latency_only`).

    Raises:
        KfedgeError: The subprocess failed (its last stderr line is in the message) or did not
            finish in time.
    """
    src_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="kfedge-latency-") as tmp:
        out = Path(tmp) / "latency.json"
        cmd = [sys.executable, "-m", "kfedge.timing", str(path), str(dataset), "--json", str(out)]
        cmd += opts.to_argv()
        timeout = 120 + 4 * opts.time_budget_s
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
        return Timing.model_validate_json(out.read_text())


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


def machine() -> Machine:
    """:func:`machine_info` as a typed record."""
    return Machine(**machine_info())


def runtime_version(fmt: str) -> str:
    """Installed version of the package whose runtime runs ``fmt`` models ("" when absent)."""
    try:
        return importlib_metadata.version(_RUNTIME_PACKAGE.get(fmt, ""))
    except (importlib_metadata.PackageNotFoundError, ValueError):
        return ""


# -- the isolated child ----------------------------------------------------------------------
def add_timing_options(ap: argparse.ArgumentParser) -> None:
    """The options the timing shares with ``python -m kfedge.evaluate``."""
    ap.add_argument("--split", default="eval", choices=SPLITS)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--runs", type=int, default=200, help="timed batch-1 runs")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET_S)
    ap.add_argument("--provider", action="append", default=None, help="ONNX Runtime provider")


def main(argv: list[str] | None = None) -> int:
    """Time one model in this process and write the timing JSON (the isolated child)."""
    from kfedge.fsutil import write_text_atomic

    ap = argparse.ArgumentParser(
        prog="python -m kfedge.timing",
        description="Time one model in this process (latency, throughput, peak memory).",
    )
    ap.add_argument("model", help="candidate directory or model file")
    ap.add_argument("dataset", help="split dataset directory (or .npz)")
    ap.add_argument("--json", default=None, help="write the timing here (default: stdout)")
    add_timing_options(ap)
    args = ap.parse_args(argv)
    try:
        timing = latency_only(args.model, args.dataset, TimingOptions.from_args(args).check())
    except KfedgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = timing.model_dump_json(indent=2, exclude_unset=True)
    if args.json:
        write_text_atomic(args.json, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
