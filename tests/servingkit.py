"""Helpers for the model-server tests: a ``python -m kfedge.serving`` subprocess, plain requests.

Import from a test module with ``from servingkit import ServerProcess, free_port, request``.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import serving_command

__all__ = ["ServerProcess", "free_port", "get", "post", "request", "run_server", "v2_body"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP(S) request: status, headers, body (errors are answers, not exceptions)."""
    req = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(url: str, timeout: float = 30) -> tuple[int, Any]:
    """GET, JSON answer."""
    status, _, body = request(url, timeout=timeout)
    return status, json.loads(body)


def post(url: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    """POST a JSON-able body (or raw bytes), JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, raw = request(url, data, {"content-type": content_type})
    return status, json.loads(raw)


def v2_body(input_name: str, x: np.ndarray, **extra: Any) -> dict[str, Any]:
    """A V2 JSON inference request for one FP32 input."""
    return {
        "inputs": [
            {
                "name": input_name,
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.ravel().tolist(),
            }
        ],
        **extra,
    }


def run_server(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kfedge.serving ARGS`` to its end (for servers that must refuse to start)."""
    return subprocess.run(
        [sys.executable, "-m", "kfedge.serving", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServerProcess:
    """A kfedge model server subprocess on 127.0.0.1, ready when the constructor returns.

    Args:
        model: Model file or candidate directory.
        name: Model name.
        tmp: Directory for the log file.
        args: More command-line arguments.
        grpc: Also serve gRPC on a free port.
        scheme: ``http`` or ``https``.
        context: SSL context for the readiness check (https).
    """

    def __init__(
        self,
        model: Path,
        name: str,
        tmp: Path,
        args: list[str] | None = None,
        grpc: bool = False,
        scheme: str = "http",
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.port = free_port()
        self.grpc_port = free_port() if grpc else None
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.name = name
        self.log = tmp / f"{name}-{self.port}.log"
        cmd = serving_command(model, name, self.port, *(args or []))
        cmd += ["--grpc_port", str(self.grpc_port)] if grpc else ["--enable_grpc", "false"]
        self._fh = self.log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_text()[-3000:]}")
            try:
                if request(f"{self.url}/v2/health/ready", timeout=5, context=context)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server not ready: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()


def grpc_infer(port: int, model: str, input_name: str, x: np.ndarray) -> Any:
    """One KServe v2 gRPC inference of ``x`` (FP32, binary) on ``127.0.0.1:port``; the response."""
    import asyncio

    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def call() -> Any:
        client = InferenceGRPCClient(f"127.0.0.1:{port}")
        try:
            inp = InferInput(input_name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            return await client.infer(InferRequest(model_name=model, infer_inputs=[inp]))
        finally:
            await client.close()

    return asyncio.run(call())
