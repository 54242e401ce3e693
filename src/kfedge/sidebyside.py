"""Side-by-side latency of every candidate on one node: the figures that decide a deployment.

Why a separate step: latency timed while other work runs (a fine-tuning neighbour, another
evaluation in the same loop) is off by up to 2x and flips which model wins. So, once every
candidate exists, this step times them all together on the target node and nothing else the
pipeline controls runs there meanwhile:

* one fresh worker process per model (``python -m kfedge.sidebyside worker``), holding only that
  model's runtime (LiteRT, ONNX Runtime or OpenVINO; never TensorFlow), loaded and warmed up once;
* interleaved rounds: in each round every worker in turn times a batch-1 burst while the others
  sleep on their pipe; the order rotates every round and a pause separates rounds, so slow drifts
  of the machine hit every model alike and cancel in the paired ratios;
* threads are capped by the CPUs this process may really use (affinity and cgroup quota), and the
  result says how many were used;
* per model: p50 / p90 / p99 over all timed runs, each round's p50, and an interval for the p50;
  ratios between models come from the paired round p50s (:func:`kfedge.stats.ratio_estimate`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import cpu, stats
from kfedge.errors import AcceleratorError, InvalidInputError, KfedgeError
from kfedge.formats import DEPLOYABLE

#: Formats timed here (the deployable ones); TensorFlow formats are timed through their
#: exported FP32 references.
TIMED_FORMATS = DEPLOYABLE


# ----------------------------------------------------------------------------------- CPUs
def resolve_threads(requested: int | None) -> tuple[int, int, str]:
    """Threads to time with: the request (0/None = all usable CPUs), never above usable CPUs.

    Returns:
        ``(threads, usable, source)``.
    """
    usable, source = cpu.usable_cpus()
    want = requested or usable
    return min(want, usable), usable, source


# -------------------------------------------------------------------------------- results
@dataclass
class ModelTiming:
    """Side-by-side latency of one model.

    Attributes:
        name: Candidate name.
        path: Model file timed.
        format: ``tflite``, ``onnx`` or ``openvino``.
        p50_ms: Median over every timed run.
        p50_ci_ms: Interval for the p50 from the round medians (order statistics).
        p90_ms: 90th percentile.
        p99_ms: 99th percentile.
        mean_ms: Mean.
        runs: Timed runs in all.
        rounds_p50_ms: Each round's median, in round order (paired across models).
        runtime: What the worker reported about its runtime (providers, threads, version).
        peak_rss_mb: The worker's peak resident memory.
    """

    name: str
    path: str
    format: str
    p50_ms: float
    p50_ci_ms: tuple[float, float]
    p90_ms: float
    p99_ms: float
    mean_ms: float
    runs: int
    rounds_p50_ms: list[float]
    runtime: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float | None = None


@dataclass
class SideBySide:
    """Every model's timing from one interleaved session.

    Attributes:
        models: Per-model timings, by name.
        skipped: Models not timed, with the reason.
        rounds: Interleaved rounds.
        threads: Inference threads each worker used.
        usable_cpus: CPUs the process could use, and ``cpus_source`` what limited them.
        cpus_source: The limiting rule (affinity, cgroup quota, os.cpu_count).
        seconds: Wall time of the session.
        machine: CPU model, ISA flags and platform of the node.
    """

    models: dict[str, ModelTiming]
    skipped: dict[str, str]
    rounds: int
    threads: int
    usable_cpus: int
    cpus_source: str
    seconds: float
    machine: dict[str, Any]

    def ratio(self, name: str, reference: str, confidence: float = 0.95) -> stats.RatioEstimate:
        """Latency ratio ``name / reference`` from the paired round medians."""
        for n in (name, reference):
            if n not in self.models:
                raise InvalidInputError(
                    f"{n!r} was not timed side by side; timed: {sorted(self.models)}"
                )
        return stats.ratio_estimate(
            self.models[name].rounds_p50_ms, self.models[reference].rounds_p50_ms, confidence
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what :func:`save` writes)."""
        return {
            "kind": "kfedge-side-by-side",
            "rounds": self.rounds,
            "threads": self.threads,
            "usable_cpus": self.usable_cpus,
            "cpus_source": self.cpus_source,
            "seconds": round(self.seconds, 2),
            "machine": self.machine,
            "skipped": self.skipped,
            "models": {n: _timing_dict(t) for n, t in self.models.items()},
        }

    def kfp_metadata(self) -> dict[str, Any]:
        """Small facts for the KFP artifact's metadata (shown in the UI)."""
        return {
            "rounds": self.rounds,
            "threads": self.threads,
            "usable_cpus": self.usable_cpus,
            "p50_ms": {n: t.p50_ms for n, t in self.models.items()},
            "skipped": sorted(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SideBySide:
        """Inverse of :meth:`to_dict`; a clear error for anything else."""
        if not isinstance(data, dict) or data.get("kind") != "kfedge-side-by-side":
            raise InvalidInputError(
                "not a kfedge side-by-side latency file (expected kind 'kfedge-side-by-side')"
            )
        models = {
            n: ModelTiming(**{**m, "p50_ci_ms": tuple(m["p50_ci_ms"])})
            for n, m in data["models"].items()
        }
        return cls(
            models=models,
            skipped=dict(data.get("skipped", {})),
            rounds=int(data["rounds"]),
            threads=int(data["threads"]),
            usable_cpus=int(data["usable_cpus"]),
            cpus_source=str(data["cpus_source"]),
            seconds=float(data["seconds"]),
            machine=dict(data.get("machine", {})),
        )


def _timing_dict(t: ModelTiming) -> dict[str, Any]:
    d = dict(t.__dict__)
    d["p50_ci_ms"] = list(t.p50_ci_ms)
    return d


def save(result: SideBySide, path: str | Path) -> Path:
    """Write the session as JSON, atomically."""
    from kfedge.fsutil import write_json_atomic

    return write_json_atomic(path, result.to_dict())


def load(path: str | Path) -> SideBySide:
    """Read a file written by :func:`save`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{p}: cannot read a side-by-side latency file: {exc}") from exc
    return SideBySide.from_dict(data)


# --------------------------------------------------------------------------------- worker
class _Worker:
    """A child process holding one model, timing bursts on request."""

    def __init__(self, name: str, path: Path, batch_file: Path, options: dict[str, Any]):
        threads = int(options.get("threads") or 1)
        env = {**os.environ, "KFEDGE_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "3"}
        cmd = [sys.executable, "-m", "kfedge.sidebyside", "worker", str(path), str(batch_file)]
        cmd += ["--options", json.dumps(options)]
        self.name = name
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            last = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise KfedgeError(f"timing worker for {self.name} exited: {last}")
        msg = json.loads(line)
        if "error" in msg:
            if msg.get("type") == "AcceleratorError":
                raise AcceleratorError(msg["error"])
            raise KfedgeError(f"timing worker for {self.name}: {msg['type']}: {msg['error']}")
        return msg

    def burst(self, warmup: int, runs: int, budget_s: float) -> list[float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"warmup": warmup, "runs": runs, "budget": budget_s}))
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return [float(t) for t in self._read()["times_ms"]]

    def close(self) -> float | None:
        peak = None
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write('{"quit": true}\n')
                self.proc.stdin.flush()
                peak = self._read().get("peak_rss_mb")
        except (OSError, ValueError, KfedgeError):
            pass
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return peak


def _peak_rss_mb() -> float:
    from kfedge.timing import _peak_rss_mb as peak

    return round(peak()[0], 2)


def worker_main(path: str, batch_file: str, options: dict[str, Any]) -> int:
    """The child's loop: load, report ready, then answer burst requests on stdin.

    Args:
        path: Model file.
        batch_file: ``.npy`` file with the input batch.
        options: Keyword arguments of :func:`kfedge.runners.load_runner`.
    """
    from kfedge.runners import load_runner

    try:
        batch = np.load(batch_file)
        runner = load_runner(path, **options)
        runner.predict(batch)
    except Exception as exc:  # noqa: BLE001 - reported to the parent in one line
        print(json.dumps({"error": str(exc), "type": type(exc).__name__}), flush=True)
        return 1
    runtime = {**runner.describe(), "tensorflow_loaded": "tensorflow" in sys.modules}
    print(json.dumps({"ready": True, "runtime": runtime}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            print(json.dumps({"peak_rss_mb": _peak_rss_mb()}), flush=True)
            return 0
        for _ in range(int(req["warmup"])):
            runner.predict(batch)
        times: list[float] = []
        deadline = time.perf_counter() + float(req["budget"])
        for i in range(int(req["runs"])):
            t0 = time.perf_counter_ns()
            runner.predict(batch)
            times.append((time.perf_counter_ns() - t0) / 1e6)
            if i >= 9 and time.perf_counter() > deadline:
                break
        print(json.dumps({"times_ms": times}), flush=True)
    return 0


# -------------------------------------------------------------------------------- session
def machine_info() -> dict[str, Any]:
    """The measuring machine, its platform name and the ISA flags that move INT8 speed.

    The CPU, cores and OS come from :func:`kfedge.timing.machine_info`; the flags are those of
    :data:`kfedge.cpu.CPUINFO_FLAGS` this CPU has.
    """
    import platform

    from kfedge.cpu import CPUINFO_FLAGS
    from kfedge.timing import machine_info as base_info

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags.update(value.split())
    except OSError:
        pass
    return {
        **base_info(),
        "machine": platform.machine(),
        "isa": sorted(f for f in CPUINFO_FLAGS if f in flags),
    }


def time_side_by_side(
    models: dict[str, str | Path],
    sample: np.ndarray,
    *,
    rounds: int = 5,
    runs_per_round: int = 100,
    round_budget_s: float = 0.5,
    warmup: int = 5,
    pause_s: float = 0.2,
    threads: int | None = None,
    runner_options: dict[str, Any] | None = None,
) -> SideBySide:
    """Time every model in interleaved rounds, one fresh worker process each.

    Args:
        models: Name -> model file (or candidate directory).
        sample: One input batch (batch 1) every model accepts.
        rounds: Interleaved rounds (>= 3 for a noise estimate).
        runs_per_round: Timed runs per model per round (at least 10; a round stops early when
            its time budget is spent).
        round_budget_s: Time budget per model per round.
        warmup: Untimed runs before each burst.
        pause_s: Pause between rounds.
        threads: Inference threads (0/None = the CPUs this process may use); capped at those.
        runner_options: More :func:`kfedge.runners.load_runner` arguments (providers,
            provider_options, delegate, device, allow_cpu_fallback).

    Returns:
        The session.

    Raises:
        InvalidInputError: No model can be timed, or fewer than 1 round.
    """
    from kfedge.candidate import model_path
    from kfedge.formats import detect_format

    if rounds < 1 or runs_per_round < 1:
        raise InvalidInputError(
            f"need rounds >= 1 and runs >= 1, got {rounds} and {runs_per_round}"
        )
    n_threads, usable, source = resolve_threads(threads)
    files: dict[str, tuple[Path, str]] = {}
    skipped: dict[str, str] = {}
    for name, p in models.items():
        f = model_path(p)
        fmt = detect_format(f)
        if fmt not in TIMED_FORMATS:
            skipped[name] = (
                f"{fmt} model: timed through its exported FP32 reference (only {TIMED_FORMATS} "
                "are timed side by side, never TensorFlow)"
            )
            continue
        files[name] = (f, fmt)
    if not files:
        raise InvalidInputError(f"no model to time side by side: {skipped}")
    started = time.perf_counter()
    workers: dict[str, _Worker] = {}
    per_round: dict[str, list[list[float]]] = {n: [] for n in files}
    with tempfile.TemporaryDirectory(prefix="kfedge-sbs-") as tmp:
        batch_file = Path(tmp) / "sample.npy"
        np.save(batch_file, np.asarray(sample))
        try:
            for name, (f, _) in files.items():
                opts = {**(runner_options or {}), "threads": n_threads}
                workers[name] = _Worker(name, f, batch_file, opts)
            names = list(files)
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    per_round[name].append(
                        workers[name].burst(warmup, max(10, runs_per_round), round_budget_s)
                    )
                if r + 1 < rounds:
                    time.sleep(pause_s)
        finally:
            peaks = {n: w.close() for n, w in workers.items()}
    timings = {}
    for name, (f, fmt) in files.items():
        allt = np.concatenate([np.asarray(x) for x in per_round[name]])
        meds = [float(np.median(x)) for x in per_round[name]]
        p50, p90, p99 = (float(v) for v in np.percentile(allt, [50, 90, 99]))
        timings[name] = ModelTiming(
            name=name,
            path=str(f),
            format=fmt,
            p50_ms=round(p50, 4),
            p50_ci_ms=tuple(round(v, 4) for v in stats.median_ci(meds)),  # type: ignore[arg-type]
            p90_ms=round(p90, 4),
            p99_ms=round(p99, 4),
            mean_ms=round(float(allt.mean()), 4),
            runs=int(allt.size),
            rounds_p50_ms=[round(m, 5) for m in meds],
            runtime=workers[name].ready.get("runtime", {}),
            peak_rss_mb=peaks.get(name),
        )
    return SideBySide(
        models=timings,
        skipped=skipped,
        rounds=rounds,
        threads=n_threads,
        usable_cpus=usable,
        cpus_source=source,
        seconds=time.perf_counter() - started,
        machine=machine_info(),
    )


def runner_options(target: str | None) -> tuple[dict[str, Any], int | None]:
    """The runner arguments and thread count a target profile asks for.

    Args:
        target: Target profile name or YAML path, or None/"" for plain CPU.

    Returns:
        ``(load_runner keyword arguments, threads or None)``.
    """
    if not target:
        return {"allow_cpu_fallback": False}, None
    from kfedge.targets import load_target

    p = load_target(target)
    opts: dict[str, Any] = {
        "providers": list(p.onnx_providers),
        "provider_options": dict(p.onnx_provider_options),
        "delegate": p.tflite_delegate,
        "allow_cpu_fallback": p.allow_cpu_fallback,
    }
    opts["device"] = p.openvino_device
    return opts, p.threads


def benchmark_from_files(
    models: list[str | Path],
    dataset_dir: str | Path,
    timings_path: str | Path,
    *,
    names: list[str] | None = None,
    target: str = "",
    threads: int = 0,
    rounds: int = 5,
    round_budget_s: float = 0.5,
) -> SideBySide:
    """The benchmark step: time every candidate side by side on this node and save the result.

    Args:
        models: Candidate directories (or model files), e.g. a KFP ``Collected`` list, the
            baseline first; a failed candidate (:mod:`kfedge.failure`) is skipped with its
            reason (a failed baseline raises).
        dataset_dir: The split dataset; the first eval sample is the batch-1 input.
        timings_path: Where to write the JSON (:func:`save`).
        names: One name per model (default: each candidate's own name).
        target: Target profile: its providers / delegate / device / threads, and whether a
            missing accelerator may fall back to the CPU.
        threads: Inference threads (0 = the profile's, else every CPU this process may use);
            never more than the CPUs this process may use.
        rounds: Interleaved rounds (>= 3 gives a noise estimate).
        round_budget_s: Time per model per round.

    Returns:
        The session (also written to ``timings_path``).

    Raises:
        InvalidInputError: Names missing, duplicated, or not one per model.
        AcceleratorError: The profile's accelerator is absent and fallback is not allowed.
    """
    from kfedge.candidate import load_candidate
    from kfedge.data import load_split
    from kfedge.failure import read_failed_candidate

    failed = {i: read_failed_candidate(m) for i, m in enumerate(models) if Path(m).is_dir()}
    if names is None or not any(names):
        names = []
        for i, m in enumerate(models):
            f = failed.get(i)
            try:
                names.append(f.name if f else load_candidate(m).name)
            except KfedgeError:
                names.append(Path(m).stem)
    if len(names) != len(models):
        raise InvalidInputError(f"{len(names)} names for {len(models)} models; give one each")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInputError(f"candidate names must be unique; repeated: {dupes}")
    opts, profile_threads = runner_options(target)
    x, _ = load_split(dataset_dir, "eval", limit=1)
    if failed.get(0) is not None:
        raise InvalidInputError(f"the baseline failed: {failed[0].text}")
    skipped = {names[i]: f"failed in {f.stage}: {f.reason}" for i, f in failed.items() if f}
    result = time_side_by_side(
        {n: m for i, (n, m) in enumerate(zip(names, models)) if failed.get(i) is None},
        x[:1],
        rounds=rounds,
        round_budget_s=round_budget_s,
        threads=threads or profile_threads,
        runner_options=opts,
    )
    result.skipped.update(skipped)  # a failed candidate is listed with its reason, not timed
    save(result, timings_path)
    return result


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m kfedge.sidebyside")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="internal: one model's timing worker")
    w.add_argument("path")
    w.add_argument("batch_file")
    w.add_argument("--options", default="{}", help="load_runner keyword arguments (JSON)")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    args = _parser().parse_args(argv)
    return worker_main(args.path, args.batch_file, json.loads(args.options))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
