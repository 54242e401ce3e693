"""Reliability sections ``soak`` and ``throughput``: the model server under sustained load.

* **soak**: ``python -m kfedge.serving`` (default options) on 127.0.0.1 and ``concurrency``
  client threads, each on its own keep-alive connection, sending V2 JSON, V2 binary and V1
  requests of batch 1 and 4 in turn for ``seconds``; every answer is checked against the runner
  in this process. The server's memory (RSS of the server and its decode process) is sampled
  every second; growth is measured from the end of the warm-up (the first ``warmup_fraction``
  of the time, at least a few seconds) to the end.
* **throughput**: the same model in-process (the runner with one interpreter per CPU, called
  by client threads) and served (default options, and with dynamic batching), at 1 and 8
  clients: throughput ratio served / in-process, p50 at 8 clients over p50 at 1, p99 / p50.

Clients run in this process and share the machine's cores with the server.
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, child_env, log, percentiles, serving_command
from benchmarks.serving import build_request, drive, free_port, in_process

#: Protocols the soak sends in turn.
SOAK_PROTOCOLS = ("v2-json", "v2-binary", "v1")


@dataclass
class SoakConfig:
    """Parameters of the soak.

    Attributes:
        seconds: Length of the soak (warm-up included).
        concurrency: Client threads.
        warmup_fraction: Share of ``seconds`` before the reference RSS is taken.
        min_warmup: Shortest warm-up in seconds.
    """

    seconds: float = 600.0
    concurrency: int = 32
    warmup_fraction: float = 0.1
    min_warmup: float = 3.0


@dataclass
class ThroughputConfig:
    """Parameters of the throughput comparison.

    Attributes:
        clients: Client counts compared.
        seconds: About how long one measurement at 1 client lasts: the request count is this
            over the model's in-process latency, between ``min_requests`` and
            ``max_requests``.
        min_requests: Fewest requests per measurement.
        max_requests: Most requests per measurement.
        rounds: Measurements per case (medians reported).
        batching: ``--max_batch_size`` of the batching variant (0 = no such variant).
    """

    clients: tuple[int, ...] = (1, 8)
    seconds: float = 10.0
    min_requests: int = 100
    max_requests: int = 2000
    rounds: int = 3
    batching: int = 8


@contextlib.contextmanager
def served(model: Path, name: str, log_path: Path, args: list[str] | None = None) -> Iterator[Any]:
    """``python -m kfedge.serving`` on a free loopback port; yields the ``Popen`` (with ``.port``).

    Raises:
        RuntimeError: The server exited or was not ready within two minutes.
    """
    port = free_port()
    cmd = serving_command(
        model, name, port, "--enable_grpc", "false", "--log_level", "WARNING", *(args or [])
    )
    with log_path.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT)
        proc.port = port  # type: ignore[attr-defined]
        try:
            deadline = time.time() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"model server exited: {log_path.read_text()[-2000:]}")
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/v2/health/ready")
                    ok = conn.getresponse().status == 200
                    conn.close()
                    if ok:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"model server not ready: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the decode process), in MiB."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


def _cases(runner: Any, name: str, seed: int = 0) -> list[tuple[Any, np.ndarray]]:
    """(request, expected answer) for every soak protocol at batch 1 and 4."""
    shape = [1 if d is None else int(d) for d in runner.inputs[0].shape]
    rng = np.random.default_rng(seed)
    cases = []
    for batch in (1, 4):
        x = rng.random((batch, *shape[1:]), dtype=np.float32)
        want = runner.predict(x)
        for p in SOAK_PROTOCOLS:
            cases.append((build_request(p, name, runner.inputs[0].name, x), want))
    return cases


def soak(model: Path, work: Path, cfg: SoakConfig) -> dict[str, Any]:
    """Serve ``model`` and load it at ``cfg.concurrency`` for ``cfg.seconds``.

    Returns:
        Requests, errors (by kind), wrong answers, throughput, latency percentiles, and the
        server's RSS at the end of the warm-up, at the end and at its highest (MiB).
    """
    from kfedge.runners import load_runner

    runner = load_runner(model, threads=1)
    cases = _cases(runner, "soak")
    runner.close()
    warmup = max(cfg.min_warmup, cfg.seconds * cfg.warmup_fraction)
    errors: Counter[str] = Counter()
    times: list[list[float]] = [[] for _ in range(cfg.concurrency)]
    rss: list[tuple[float, float]] = []
    stop = threading.Event()
    with served(model, "soak", work / "soak-server.log") as proc:
        t_start = time.monotonic()

        def client(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=60)
            k = i
            while not stop.is_set():
                req, want = cases[k % len(cases)]
                k += 1
                t0 = time.perf_counter_ns()
                try:
                    conn.request("POST", req.path, body=req.body, headers=req.headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    if resp.status != 200:
                        errors[f"HTTP {resp.status}"] += 1
                        continue
                    got = req.decode(
                        resp.status, {k_.lower(): v for k_, v in resp.getheaders()}, body
                    )
                    if not np.allclose(np.asarray(got).reshape(want.shape), want, atol=1e-5):
                        errors["wrong answer"] += 1
                        continue
                except (OSError, http.client.HTTPException) as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=60)
                    continue
                if time.monotonic() - t_start >= warmup:
                    times[i].append((time.perf_counter_ns() - t0) / 1e6)
            conn.close()

        with ThreadPoolExecutor(cfg.concurrency) as pool:
            futures = [pool.submit(client, i) for i in range(cfg.concurrency)]
            warm_rss = None
            while time.monotonic() - t_start < cfg.seconds:
                now = time.monotonic() - t_start
                rss.append((round(now, 1), round(rss_mb(proc.pid), 1)))
                if warm_rss is None and now >= warmup:
                    warm_rss = rss[-1][1]
                    log(f"soak: warm-up done at {now:.0f} s, RSS {warm_rss:.0f} MiB")
                time.sleep(min(1.0, max(0.05, cfg.seconds - now)))
            stop.set()
            for f in futures:
                f.result()
        end_rss = rss_mb(proc.pid)
        measured = time.monotonic() - t_start - warmup
    flat = [t for ts in times for t in ts]
    warm_rss = warm_rss if warm_rss is not None else (rss[0][1] if rss else end_rss)
    return {
        "seconds": cfg.seconds,
        "warmup_seconds": warmup,
        "concurrency": cfg.concurrency,
        "protocols": list(SOAK_PROTOCOLS),
        "batches": [1, 4],
        "requests": len(flat) + sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "throughput_rps": len(flat) / measured if measured > 0 else None,
        **({k: round(v, 3) for k, v in percentiles(flat).items()} if flat else {}),
        "rss_warm_mib": round(warm_rss, 1),
        "rss_end_mib": round(end_rss, 1),
        "rss_max_mib": round(max([end_rss, *(r for _, r in rss)]), 1),
        "rss_growth_pct": round(100 * (end_rss - warm_rss) / warm_rss, 2),
        "rss_samples": rss[:: max(1, len(rss) // 60)],
    }


def _median(values: list[float]) -> float:
    return float(np.median(values))


def throughput(model: Path, key: str, work: Path, cfg: ThroughputConfig) -> dict[str, Any]:
    """In-process vs served at each client count (V2 JSON and V2 binary); medians over rounds.

    Returns:
        ``{"model", "workers", "rows": [{"mode", "protocol", "clients", "p50", "p99",
        "throughput_rps"}, ...]}``; ``mode`` is ``in-process``, ``served`` or ``batched``.
    """
    from kfedge.runners import load_runner
    from kfedge.serving.model import default_workers

    workers = default_workers()
    runner = load_runner(model, threads=workers, instances=workers)
    shape = [1 if d is None else int(d) for d in runner.inputs[0].shape]
    x = np.random.default_rng(1).random((1, *shape[1:]), dtype=np.float32)
    rows: list[dict[str, Any]] = []
    latency = in_process(runner, x, 1, 20)["p50"] / 1000
    n = int(min(cfg.max_requests, max(cfg.min_requests, cfg.seconds / max(latency, 1e-6))))

    def add(mode: str, protocol: str, clients: int, per: list[dict[str, Any]]) -> None:
        rows.append(
            {
                "mode": mode,
                "protocol": protocol,
                "clients": clients,
                "p50": _median([r["p50"] for r in per]),
                "p99": _median([r["p99"] for r in per]),
                "throughput_rps": _median([r["throughput_rps"] for r in per]),
            }
        )

    for clients in cfg.clients:
        log(f"throughput {key}: in-process, {clients} client(s)")
        add(
            "in-process",
            "-",
            clients,
            [in_process(runner, x, clients, n) for _ in range(cfg.rounds)],
        )
    runner.close()
    variants = [("served", [])]
    if cfg.batching:
        variants.append(("batched", ["--max_batch_size", str(cfg.batching)]))
    for mode, args in variants:
        with served(model, key, work / f"throughput-{key}-{mode}.log", args) as proc:
            for protocol in ("v2-binary", "v2-json"):
                req = build_request(protocol, key, runner.inputs[0].name, x)
                drive(proc.port, req, 1, 50)  # warm-up
                for clients in cfg.clients:
                    log(f"throughput {key}: {mode} {protocol}, {clients} client(s)")
                    add(
                        mode,
                        protocol,
                        clients,
                        [drive(proc.port, req, clients, n) for _ in range(cfg.rounds)],
                    )
    return {"model": key, "workers": workers, "requests": n, "rows": rows}
