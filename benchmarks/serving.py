"""Section: the kfedge model server — V2 JSON vs V2 binary tensor extension vs V1.

The server is ``python -m kfedge.serving`` in a subprocess listening on 127.0.0.1 (a free port),
serving one model. Clients are threads of this process, each on its own keep-alive HTTP
connection, sending a bounded number of requests whose bodies are encoded once beforehand (so
the client's own encoding is not timed; decoding the answer is). The same model is also run
in-process through :func:`kfedge.runners.load_runner` with the same thread count: the ratio is the
server's overhead (HTTP, (de)serialisation, request checks, thread hand-off).

Client and server share the machine's cores: concurrent clients compete with the server for
CPU, which is part of what the concurrent numbers show.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    ROOT,
    child_env,
    interleaved,
    log,
    median,
    percentiles,
)

PROTOCOLS = ("v2-json", "v2-binary", "v1")


@dataclass
class ServingConfig:
    """Parameters of the serving benchmark.

    Attributes:
        cases: (concurrent clients, batch size, requests per round) triples.
        rounds: Rounds per case, protocols interleaved.
        warmup: Untimed requests per protocol before each case.
        threads: Inference threads of the model runtime (server and in-process alike).
        model_name: Name on the endpoint paths.
    """

    cases: tuple[tuple[int, int, int], ...] = ((1, 1, 300), (8, 1, 400), (1, 32, 100))
    rounds: int = 3
    warmup: int = 20
    threads: int = 1
    model_name: str = "digits"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m kfedge.serving`` on 127.0.0.1 in a subprocess (a context manager)."""

    def __init__(self, model: Path, name: str, threads: int, log_dir: Path) -> None:
        self.model, self.name, self.threads = model, name, threads
        self.port = free_port()
        self.log_path = log_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = float("nan")

    def __enter__(self) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "kfedge.serving",
            "--model_name",
            self.name,
            "--model_dir",
            str(self.model),
            "--http_port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--enable_grpc",
            "false",
            "--threads",
            str(self.threads),
            "--log_level",
            "WARNING",
        ]
        self._fh = self.log_path.open("w")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the model server exited ({self.proc.returncode}): "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", f"/v2/models/{self.name}/ready")
                if conn.getresponse().status == 200:
                    conn.close()
                    self.start_seconds = time.perf_counter() - t0
                    return self
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(
            f"the model server did not become ready: {self.log_path.read_text()[-2000:]}"
        )

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()


# -- requests --------------------------------------------------------------------------------
@dataclass
class Request:
    """One pre-encoded request and how to decode its answer."""

    protocol: str
    path: str
    body: bytes
    headers: dict[str, str]

    def decode(self, status: int, headers: dict[str, str], body: bytes) -> np.ndarray:
        """The first output of the answer as an array (raises on a non-200)."""
        if status != 200:
            raise RuntimeError(f"{self.protocol}: HTTP {status}: {body[:300]!r}")
        if self.protocol == "v1":
            return np.asarray(json.loads(body)["predictions"], dtype=np.float32)
        n = headers.get("inference-header-content-length")
        if n is not None:
            meta = json.loads(body[: int(n)])
            out = meta["outputs"][0]
            return np.frombuffer(
                body[int(n) :], dtype="<f4", count=int(np.prod(out["shape"]))
            ).reshape(out["shape"])
        out = json.loads(body)["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def build_request(protocol: str, model_name: str, input_name: str, x: np.ndarray) -> Request:
    """Encode ``x`` for ``protocol`` (v2-json, v2-binary with binary output, v1)."""
    v2 = f"/v2/models/{model_name}/infer"
    if protocol == "v2-json":
        body = {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
        return Request(
            protocol, v2, json.dumps(body).encode(), {"content-type": "application/json"}
        )
    if protocol == "v2-binary":
        raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": input_name,
                        "shape": list(x.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        return Request(
            protocol,
            v2,
            head + raw,
            {
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(head)),
            },
        )
    if protocol == "v1":
        body = {"instances": x.tolist()}
        return Request(
            protocol,
            f"/v1/models/{model_name}:predict",
            json.dumps(body).encode(),
            {"content-type": "application/json"},
        )
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def _send(conn: http.client.HTTPConnection, req: Request) -> tuple[int, dict[str, str], bytes]:
    conn.request("POST", req.path, body=req.body, headers=req.headers)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def drive(port: int, req: Request, clients: int, total: int) -> dict[str, Any]:
    """``clients`` threads, each on its own keep-alive connection, send ``total`` requests.

    Returns:
        Latency percentiles (ms, per request, answer decoded) and throughput (requests/s).
    """
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    times: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            _send(conn, req)  # connect (not timed)
            start.wait()
            for _ in range(per[i]):
                t0 = time.perf_counter_ns()
                req.decode(*_send(conn, req))
                times[i].append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            conn.close()

    with ThreadPoolExecutor(clients) as pool:
        futs = [pool.submit(client, i) for i in range(clients)]
        start.wait()
        t0 = time.perf_counter()
        for f in futs:
            f.result()
        wall = time.perf_counter() - t0
    flat = [t for ts in times for t in ts]
    return {**percentiles(flat), "throughput_rps": len(flat) / wall, "requests": len(flat)}


def in_process(runner: Any, x: np.ndarray, clients: int, total: int) -> dict[str, Any]:
    """The same load straight on the runner (threads calling ``predict``)."""
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    times: list[list[float]] = [[] for _ in range(clients)]

    def work(i: int) -> None:
        for _ in range(per[i]):
            t0 = time.perf_counter_ns()
            runner.predict(x)
            times[i].append((time.perf_counter_ns() - t0) / 1e6)

    for _ in range(20):
        runner.predict(x)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(work, i) for i in range(clients)]:
            f.result()
    wall = time.perf_counter() - t0
    flat = [t for ts in times for t in ts]
    return {**percentiles(flat), "throughput_rps": len(flat) / wall, "requests": len(flat)}


def run(model: Path, dataset: Path, cfg: ServingConfig) -> dict[str, Any]:
    """Serve ``model`` and measure every protocol at every case; compare with in-process.

    Args:
        model: A .tflite / .onnx model file or candidate directory.
        dataset: The split dataset whose eval samples are sent.
        cfg: Parameters.

    Returns:
        ``{"model", "threads", "server_start_seconds", "rows": [...]}``; each row has the case,
        protocol, median p50/p90/p99 and throughput over rounds, and the ratio to in-process.
    """
    from kfedge.candidate import model_path
    from kfedge.data import load_split
    from kfedge.runners import load_runner

    path = model_path(model)
    runner = load_runner(path, threads=cfg.threads)
    input_name = runner.inputs[0].name
    x_all, _ = load_split(dataset, "eval", max(b for _, b, _ in cfg.cases))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kfedge-bench-serve-") as tmp:
        log(f"starting the model server on 127.0.0.1 for {path.name}")
        with ServerProcess(path, cfg.model_name, cfg.threads, Path(tmp)) as srv:
            for clients, batch, total in cfg.cases:
                x = np.ascontiguousarray(x_all[:batch])
                want = runner.predict(x)
                reqs = {p: build_request(p, cfg.model_name, input_name, x) for p in PROTOCOLS}
                # correctness once per protocol, and warm-up
                for req in reqs.values():
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
                    got = req.decode(*_send(conn, req))
                    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
                    for _ in range(cfg.warmup):
                        _send(conn, req)
                    conn.close()
                res: dict[str, list[dict[str, Any]]] = {p: [] for p in ("in-process", *PROTOCOLS)}
                for r in range(cfg.rounds):
                    for p in interleaved(["in-process", *PROTOCOLS], r):
                        log(f"serving: {clients} client(s), batch {batch}, round {r + 1}: {p}")
                        if p == "in-process":
                            res[p].append(in_process(runner, x, clients, total))
                        else:
                            res[p].append(drive(srv.port, reqs[p], clients, total))
                base = res["in-process"]
                for p, per in res.items():
                    ratios = [a["p50"] / b["p50"] for a, b in zip(per, base)]
                    tput = [a["throughput_rps"] / b["throughput_rps"] for a, b in zip(per, base)]
                    rows.append(
                        {
                            "clients": clients,
                            "batch": batch,
                            "requests": total,
                            "protocol": p,
                            "request_bytes": None if p == "in-process" else len(reqs[p].body),
                            "p50": median([a["p50"] for a in per]),
                            "p90": median([a["p90"] for a in per]),
                            "p99": median([a["p99"] for a in per]),
                            "throughput_rps": median([a["throughput_rps"] for a in per]),
                            "latency_ratio": median(ratios),
                            "throughput_ratio": median(tput),
                        }
                    )
            start = srv.start_seconds
    runner.close()
    return {
        "model": str(path),
        "threads": cfg.threads,
        "rounds": cfg.rounds,
        "server_start_seconds": start,
        "rows": rows,
    }
