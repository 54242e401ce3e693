"""Deploy without a cluster: kfedge's model server on a free loopback port, smoke-tested.

Used when no Kubernetes API is configured (``kfp.local`` / ``make run``): the same server the
``kfedge-edge`` ServingRuntime runs is started in a subprocess (ONNX Runtime / LiteRT only, no
TensorFlow), checked over V1 and V2 with :func:`kfedge.smoke.smoke_test`, and stopped.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kfedge.errors import InvalidInputError, NotReadyError
from kfedge.isvc import DeployError
from kfedge.smoke import smoke_test

log = logging.getLogger(__name__)

__all__ = ["deploy_local", "local_server"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise DeployError(
                f"the local model server exited with status {proc.returncode}:\n{tail}"
            )
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise NotReadyError(f"the local model server at {url} was not ready after {timeout:g} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def local_server(
    model_dir: str | Path, log_path: str | Path, name: str = "model", ready_timeout: float = 120
) -> Iterator[str]:
    """Run the model server for ``model_dir`` on a free loopback port while the block runs.

    Args:
        model_dir: Candidate directory or model file (.tflite / .onnx).
        log_path: File the server's output is appended to.
        name: Model name on the endpoint paths.
        ready_timeout: Seconds to wait for ``/v2/health/ready``.

    Yields:
        The server's base URL (``http://127.0.0.1:PORT``); the server is stopped afterwards.

    Raises:
        DeployError: The server exited before it was ready (its log tail is in the message).
        NotReadyError: It was not ready within ``ready_timeout``.
    """
    log_path = Path(log_path)
    with log_path.open("ab") as log_file:
        for attempt in range(3):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [
                sys.executable,
                "-m",
                "kfedge.serving",
                f"--model_name={name}",
                f"--model_dir={model_dir}",
                f"--http_port={port}",
                "--host=127.0.0.1",
                "--enable_grpc=false",
            ]
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
            try:
                _wait_ready(proc, url, log_path, ready_timeout)
            except DeployError:
                _stop(proc)
                taken = "address already in use" in log_path.read_text(errors="replace")
                if attempt < 2 and taken:
                    continue  # the free port was taken in between; try another
                raise
            except BaseException:
                _stop(proc)
                raise
            break
        try:
            yield url
        finally:
            _stop(proc)


def deploy_local(
    model_dir: str | Path,
    sample: np.ndarray,
    expected: np.ndarray,
    name: str = "model",
    atol: float = 1e-3,
    ready_timeout: float = 120,
    output_name: str | None = None,
) -> dict[str, Any]:
    """Serve the model on a free loopback port in a subprocess, smoke-test V1 and V2, stop it.

    Args:
        model_dir: Candidate directory or model file (.tflite / .onnx).
        sample: One example (see :func:`kfedge.smoke.smoke_test`).
        expected: The output recorded for it at evaluation.
        name: Model name on the endpoint paths.
        atol: Largest accepted absolute difference.
        ready_timeout: Seconds to wait for the server to be ready.
        output_name: Output to compare (default: the first).

    Returns:
        ``{"mode": "local", "url", "model_name", "log", "protocols": {"v1": ..., "v2": ...},
        "max_abs_diff", "passed", "detail"}``; a wrong answer gives ``passed: False`` with
        the reason in ``detail`` (the server is stopped either way).

    Raises:
        DeployError: The server did not start (its log tail is in the message).
    """
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise InvalidInputError(f"model not found: {model_dir}")
    with tempfile.NamedTemporaryFile(prefix="kfedge-serve-", suffix=".log", delete=False) as f:
        log_path = Path(f.name)
    result: dict[str, Any] = {"mode": "local", "model_name": name, "log": str(log_path)}
    with local_server(model_dir, log_path, name, ready_timeout) as url:
        result["url"] = url
        from kfedge.candidate import model_digest

        result.update(
            smoke_test(
                url,
                name,
                sample,
                expected,
                atol,
                ("v1", "v2"),
                output_name,
                check=False,
                model_version=model_digest(model_dir),
            )
        )
    log.info("local deploy of %s: %s", model_dir, result["detail"])
    return result
