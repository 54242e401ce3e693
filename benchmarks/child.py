"""Timing worker run in a fresh subprocess: ``python -m benchmarks.child MODE ... --json OUT``.

It imports only numpy and the runner's runtime (ONNX Runtime or LiteRT) through
:func:`kfedge.runners.load_runner` — never TensorFlow — so what it measures is the runtime
alone. Modes:

* ``block``: each model timed in its own block (short pause, warm-up, timed runs), one after
  the other — how :func:`kfedge.evaluate.evaluate` times a candidate. The side-by-side
  benchmarks start one process per model and round, so every candidate gets a fresh process.
* ``alternate``: all models warmed up, then timed run by run in turn (A, B, A, B, ...) — the
  way that measures ONNX Runtime's spinning worker threads rather than the models.

Output: ``{"mode", "threads", "spinning", "tensorflow_loaded", "models": {path: {p50, ...}}}``;
an OpenVINO model's entry also names the CPU kernels its layers run on (``kernels``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import percentiles


def _input_for(runner: Any, seed: int = 0) -> np.ndarray:
    spec = runner.inputs[0]
    shape = [1 if d is None else int(d) for d in spec.shape]
    shape[0] = 1
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def time_block(
    runner: Any,
    x: np.ndarray,
    runs: int,
    warmup: int,
    budget_s: float | None = None,
    min_runs: int = 5,
) -> list[float]:
    """Warm up, then time up to ``runs`` batch-1 predictions (ms each).

    With ``budget_s``, timing stops once that many seconds have been spent timing, but not
    before ``min_runs`` runs (a slow model still gets a median of several runs).
    """
    for _ in range(warmup):
        runner.predict(x)
    out: list[float] = []
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter_ns()
        runner.predict(x)
        out.append((time.perf_counter_ns() - t0) / 1e6)
        if budget_s is not None and i + 1 >= min_runs and time.perf_counter() - start > budget_s:
            break
    return out


def time_alternate(
    runners: list[Any], xs: list[np.ndarray], runs: int, warmup: int
) -> list[list[float]]:
    """Warm every runner up, then time them run by run in turn (ms each)."""
    for r, x in zip(runners, xs):
        for _ in range(warmup):
            r.predict(x)
    out: list[list[float]] = [[] for _ in runners]
    for _ in range(runs):
        for i, (r, x) in enumerate(zip(runners, xs)):
            t0 = time.perf_counter_ns()
            r.predict(x)
            out[i].append((time.perf_counter_ns() - t0) / 1e6)
    return out


def _kernels(runner: Any) -> dict[str, Any]:
    """``{"kernels": {...}}`` for a runner that names its CPU kernels (OpenVINO), else ``{}``."""
    kernels = getattr(runner, "kernels", None)
    return {"kernels": kernels()} if callable(kernels) else {}


def measure(
    mode: str,
    models: list[str],
    threads: int,
    spinning: bool,
    runs: int,
    warmup: int,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """Load the models and time them in ``mode`` in this process (see the module docstring)."""
    from kfedge.runners import load_runner

    runners = [load_runner(m, threads=threads, spinning=spinning) for m in models]
    xs = [_input_for(r) for r in runners]
    try:
        if mode == "block":
            times = []
            for r, x in zip(runners, xs):
                time.sleep(0.2)  # let the previous block's worker threads go idle
                times.append(time_block(r, x, runs, warmup, budget_s))
        elif mode == "alternate":
            times = time_alternate(runners, xs, runs, warmup)
        else:
            raise ValueError(f"mode must be block or alternate, got {mode!r}")
    finally:
        for r in runners:
            r.close()
    return {
        "mode": mode,
        "threads": threads,
        "spinning": spinning,
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "models": {m: {**percentiles(t), **_kernels(r)} for m, t, r in zip(models, times, runners)},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.child")
    ap.add_argument("mode", choices=["block", "alternate"])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--spinning", action="store_true")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--budget", type=float, default=None, help="seconds of timed runs per model (block mode)"
    )
    ap.add_argument("--json", required=True)
    a = ap.parse_args(argv)
    result = measure(a.mode, a.models, a.threads, a.spinning, a.runs, a.warmup, a.budget)
    Path(a.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
