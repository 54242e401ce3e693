"""Shared helpers of the benchmarks: machine description, statistics, Markdown tables, timing.

Nothing here imports TensorFlow; the heavy frameworks are imported inside the section
functions that need them (through :mod:`kfedge.compat`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

#: Repository root (benchmarks/ lives directly under it).
ROOT = Path(__file__).resolve().parent.parent
#: Distributions whose versions the report states.
PACKAGES = (
    "kfedge",
    "numpy",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
    "openvino",
    "nncf",
    "kserve",
)


# -- machine ---------------------------------------------------------------------------------
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``"-"`` where it is not installed)."""
    out = {}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            out[n] = "-"
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, SIMD features, OS, Python, load and library versions."""
    flags = _cpu_flags()
    simd = [
        f
        for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "neon", "asimddp")
        if f in flags
    ]
    return {
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _mem_total_gib(),
        "simd": simd,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "load_average_at_start": load_average(),
        "packages": package_versions(),
    }


def load_average() -> list[float]:
    """The 1/5/15-minute load average now (NaN where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


# -- statistics ------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (NaN for an empty one)."""
    return float(np.median(np.asarray(values, dtype=np.float64))) if len(values) else float("nan")


def spread(values: Sequence[float]) -> float:
    """Relative spread of repeated measurements: (max - min) / median, as a fraction."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    return float((max(values) - min(values)) / m) if m else float("nan")


def percentiles(times_ms: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean of a list of timings (ms)."""
    a = np.asarray(times_ms, dtype=np.float64)
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "n": int(a.size),
    }


def interleaved(items: Sequence[Any], round_index: int) -> list[Any]:
    """The order of ``items`` in round ``round_index``: forward, reversed, then rotated.

    Every item meets a different neighbour and position from round to round, so slow drifts of
    the machine (another job starting) do not land on one candidate only.
    """
    items = list(items)
    if not items:
        return items
    if round_index % 2 == 1:
        items = items[::-1]
    k = (round_index // 2) % len(items)
    return items[k:] + items[:k]


# -- formatting ------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ".3f", none: str = "n/a") -> str:
    """Format a number (``none`` for None / NaN), leave strings alone."""
    if value is None:
        return none
    if isinstance(value, str):
        return value
    try:
        if np.isnan(value):
            return none
    except TypeError:
        return str(value)
    return format(value, spec)


def ratio_str(value: float | None, spec: str = ".2f") -> str:
    """``1.23x`` (or ``n/a``)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:{spec}}x"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; ``|`` in cells is escaped."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def file_sizes(path: str | Path) -> dict[str, Any]:
    """``{"size_bytes", "size_gzip_bytes", "size_files"}`` of a model, as kfedge counts it.

    An OpenVINO IR ``.xml`` counts with its ``.bin`` weights (:func:`kfedge.formats.
    model_size_bytes`, :func:`kfedge.weights.gzip_size`: gzip level 9, each file on its own);
    ``size_files`` names the files counted.
    """
    from kfedge.formats import model_size_bytes
    from kfedge.weights import gzip_size

    p = Path(path)
    files = [p.name]
    if p.suffix.lower() == ".xml" and p.with_suffix(".bin").is_file():
        files.append(p.with_suffix(".bin").name)
    return {
        "size_bytes": model_size_bytes(p),
        "size_gzip_bytes": gzip_size(p),
        "size_files": files,
    }


def mb(n_bytes: float | None) -> float | None:
    """Bytes -> MB (1 MB = 1,000,000 bytes, as the report uses)."""
    return None if n_bytes is None else n_bytes / 1e6


# -- subprocesses ----------------------------------------------------------------------------
def child_env(threads: int | None = None) -> dict[str, str]:
    """Environment for a child Python: the repo's ``src`` and root importable, TF logs quiet."""
    env = dict(os.environ)
    parts = [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads:
        env["KFEDGE_THREADS"] = str(threads)
    return env


def run_json_child(
    module: str, args: list[str], timeout: float = 600, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m module args... --json OUT`` and return the JSON it wrote.

    ``env`` adds variables to the child's environment (:func:`child_env`).

    Raises:
        RuntimeError: The child failed or wrote nothing (its last stderr line is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="kfedge-bench-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", module, *args, "--json", str(out)]
        env = {**child_env(), **(env or {})}
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
            raise RuntimeError(
                f"{module} {' '.join(args[:3])}... failed (exit {proc.returncode}): "
                f"{lines[-1] if lines else 'no output'}"
            )
        return json.loads(out.read_text())


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def log(msg: str) -> None:
    """Progress line on stderr (the run prints its result as Markdown at the end)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def serving_command(model: Path | str, name: str, port: int, *args: str) -> list[str]:
    """The ``python -m kfedge.serving`` command line serving ``model`` on ``127.0.0.1:port``.

    Args:
        model: The model directory.
        name: The model name the server publishes.
        port: The HTTP port.
        *args: More command-line arguments, appended as given.

    Returns:
        The argument list for ``subprocess.Popen``.
    """
    return [
        sys.executable,
        "-m",
        "kfedge.serving",
        "--model_name",
        name,
        "--model_dir",
        str(model),
        "--http_port",
        str(port),
        "--host",
        "127.0.0.1",
        *args,
    ]


def find_weed() -> str | None:
    """The ``weed`` binary: on PATH, or next to the running Python (a venv's bin/)."""
    found = shutil.which("weed")
    if found:
        return found
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held together while picked)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def interleaved_rounds(
    names: Sequence[str], rounds: int, threads: Iterable[int], dropped: set[str]
) -> Iterator[tuple[int, int, str]]:
    """``(round, threads, name)`` in measuring order: per round, per thread count, interleaved.

    Args:
        names: The candidates.
        rounds: How many rounds.
        threads: The thread counts, in order, each round.
        dropped: Names to skip; read at each step, so a name the caller adds is skipped from then.

    Yields:
        The round index (from 0), the thread count and the candidate name.
    """
    for r in range(rounds):
        for t in threads:
            for name in interleaved(names, r):
                if name not in dropped:
                    yield r, t, name
