"""kfedge's model server: KServe's data plane and endpoints, with the gaps of KServe 0.21 closed.

What this adds to ``kserve.ModelServer`` (why: ``docs/ARCHITECTURE.md#serving``), module by module:

* **Bind address** (here and :mod:`~kfedge.serving.grpc_server`). KServe binds HTTP to
  ``0.0.0.0`` and gRPC to ``[::]``. Here both listen on ``host`` (``127.0.0.1`` for
  :func:`serve`, ``0.0.0.0`` for the container entry point).
* **Request checks** (:mod:`~kfedge.serving.model`). :class:`EdgeModel` checks every request
  against the model's declared inputs (name, datatype, shape, numeric data, batch size) -> 400.
* **Errors in the Open Inference Protocol's form** (:mod:`~kfedge.serving.errors`,
  :mod:`~kfedge.serving.binary`, :mod:`~kfedge.serving.dataplane`). Schema errors that FastAPI
  answers with 422 and ``{"detail": [...]}`` come back as 400 ``{"error": "..."}``; every other
  error is ``{"error": "..."}`` too. Malformed JSON -> 400, unknown model -> 404, model not
  loaded -> 503; the binary tensor extension is decoded with size checks, so a malformed binary
  request is a 400, not a 500. Only a real server fault is a 500.
* **Request-body limits** (:mod:`~kfedge.serving.limits`). Bodies over the limit derived from
  the model (max batch x input size as JSON, at most 16 MiB unless ``max_body_bytes`` says
  otherwise) are refused with **400** ``{"error": "... over the limit of N bytes ..."}``, before
  they are read; a body must arrive within ``body_timeout`` (else 408), at most
  ``max_inflight`` bodies at once (else 503), gzip bodies are decompressed within the limit.
* **Concurrency.** Large bodies are decoded and checked in worker threads and inference runs
  on ``infer_workers`` threads (one interpreter each; default one per CPU), never on the event
  loop, so health checks and metadata answer while batches run; optional dynamic batching
  (:mod:`~kfedge.serving.batching`).
* **Start-up that fails early and in one line.** The HTTP and gRPC ports are bound (gRPC
  without ``SO_REUSEPORT``) and TLS files loaded before the server says it serves; a port in
  use or a bad certificate is a :class:`~kfedge.errors.ConfigError`.
* **TLS.** ``ssl_certfile`` + ``ssl_keyfile`` serve HTTPS (and gRPC over TLS).
* **Schema-conformant responses** (:mod:`~kfedge.serving.app`). Optional fields that are unset
  are left out instead of being sent as ``null``.
* **No collector stalls.** Everything allocated before serving is frozen out of the cyclic
  garbage collector (``gc.freeze``).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import ssl
import threading
from typing import Any

import uvicorn
from kserve.model_repository import ModelRepository
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from kfedge._version import __version__
from kfedge.errors import ConfigError
from kfedge.serving.app import build_app
from kfedge.serving.dataplane import EdgeDataPlane
from kfedge.serving.decoding import BodyDecoder
from kfedge.serving.grpc_server import DEFAULT_GRPC_THREADS, GRPCServer, port_in_use
from kfedge.serving.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INFLIGHT,
    model_body_limit,
)
from kfedge.serving.model import DEFAULT_INFER_WORKERS, DEFAULT_MAX_BATCH, EdgeModel

log = logging.getLogger("kfedge.serving")


class EdgeServer:
    """One model behind KServe's REST (and optionally gRPC) endpoints on a chosen address.

    Args:
        model: The model to serve (loaded in :meth:`run` if not yet loaded).
        host: Address to listen on (``127.0.0.1`` for loopback only, ``0.0.0.0`` in a pod).
        http_port: HTTP port.
        grpc_port: gRPC port, or None for no gRPC server.
        max_body_bytes: Largest accepted request body (bigger -> 400); None = derived from the
            model (:func:`~kfedge.serving.limits.model_body_limit`, at most 16 MiB).
        grpc_threads: Threads of the gRPC server.
        grace_period: Seconds in-flight requests get at shutdown.
        timeout_keep_alive: Keep-alive timeout (longer than a proxy's idle timeout).
        access_log: Log one line per request.
        body_timeout: Seconds a request body may take to arrive (then 408).
        max_inflight: Requests with a body read or answered at once (more -> 503).
        ssl_certfile: PEM certificate (chain): serve HTTPS (and gRPC over TLS).
        ssl_keyfile: PEM private key of the certificate.
        decode_processes: Processes that decode large bodies (0 = worker threads only).

    Raises:
        ConfigError: Only one of ``ssl_certfile`` / ``ssl_keyfile`` given.
    """

    def __init__(
        self,
        model: EdgeModel,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8080,
        grpc_port: int | None = None,
        max_body_bytes: int | None = None,
        grpc_threads: int = DEFAULT_GRPC_THREADS,
        grace_period: float = 30,
        timeout_keep_alive: int = 65,
        access_log: bool = True,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        decode_processes: int = 1,
    ) -> None:
        if bool(ssl_certfile) != bool(ssl_keyfile):
            given = "--ssl_certfile" if ssl_certfile else "--ssl_keyfile"
            raise ConfigError(
                f"--ssl_certfile and --ssl_keyfile go together (HTTPS needs both); got only {given}"
            )
        self.model = model
        self.host = host
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.max_body_bytes_cap = max_body_bytes
        self.grpc_threads = grpc_threads
        self.grace_period = grace_period
        self.timeout_keep_alive = timeout_keep_alive
        self.access_log = access_log
        self.ssl_certfile = ssl_certfile or None
        self.ssl_keyfile = ssl_keyfile or None
        self.repository = ModelRepository()
        self.repository.update(model)
        self.dataplane = EdgeDataPlane(model_registry=self.repository)
        self.repo_ext = ModelRepositoryExtension(model_registry=self.repository)
        self.decoder = BodyDecoder(decode_processes)
        self.app = build_app(
            self.dataplane,
            self.repo_ext,
            self._body_limit(),
            body_timeout,
            max_inflight,
            self.decoder,
        )
        self._uvicorn: uvicorn.Server | None = None
        self._sock: socket.socket | None = None

    def bind(self) -> None:
        """Check the TLS files, take the HTTP port, check the gRPC port, before the model loads.

        Raises:
            ConfigError: A port is in use or cannot be bound, or the TLS files cannot be used.
        """
        self._check_tls()
        if self._sock is None:
            self._sock = bind_http(self.host, self.http_port)
        if self.grpc_port is not None and port_in_use(self.host, self.grpc_port):
            self._sock.close()
            self._sock = None
            raise ConfigError(
                f"gRPC port {self.host}:{self.grpc_port} is in use (another server listens "
                "there); choose another --grpc_port or stop that server"
            )

    @property
    def max_body_bytes(self) -> int:
        """The body limit in force (derived from the model once it is loaded)."""
        return int(self.app.max_bytes)

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``."""
        return "https" if self.ssl_certfile else "http"

    def _body_limit(self) -> int:
        if self.max_body_bytes_cap is not None:
            return self.max_body_bytes_cap
        if self.model.ready and self.model.runner is not None:
            return model_body_limit(self.model.runner.inputs, self.model.max_batch)
        return DEFAULT_MAX_BODY_BYTES

    def run(self) -> None:
        """Load the model (once), listen, and serve until SIGTERM / SIGINT.

        Raises:
            ConfigError: A port is in use or cannot be bound, or the TLS files cannot be used
                (raised before the server says it serves).
        """
        if not self.model.ready:
            self.model.load()
        self.app.max_bytes = self._body_limit()
        self.bind()
        sock = self._sock
        assert sock is not None
        self.decoder.start()
        # Everything allocated so far (imports, the model) lives as long as the server: keep it
        # out of the cyclic collector, so that the full collections large V1 bodies trigger
        # (tens of thousands of nested lists) scan only request objects (was ~60 ms stalls).
        gc.collect()
        gc.freeze()
        restore = _quiet_signals()
        try:
            asyncio.run(self._serve(sock))
        finally:
            sock.close()
            self._sock = None
            self.decoder.close()
            restore()
            self.model.stop()

    def _check_tls(self) -> None:
        if not self.ssl_certfile:
            return
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot serve HTTPS with certificate {self.ssl_certfile} and key "
                f"{self.ssl_keyfile}: {exc}; expected readable PEM files that match"
            ) from None

    def should_exit(self) -> None:
        """Ask a running server to shut down gracefully."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    async def _serve(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.http_port,
            log_config=None,
            lifespan="off",
            access_log=self.access_log,
            timeout_graceful_shutdown=int(self.grace_period),
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )
        self._uvicorn = uvicorn.Server(config)
        grpc_server = None
        if self.grpc_port is not None:
            grpc_server = GRPCServer(
                self.host,
                self.grpc_port,
                self.dataplane,
                self.repo_ext,
                max_message_bytes=self.max_body_bytes,
                grace_period=self.grace_period,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
            )
            await grpc_server.start(self.grpc_threads)
        log.info(
            "kfedge model server %s: model '%s' on %s://%s:%d (V1 /v1/models/%s:predict, "
            "V2 /v2/models/%s/infer), body limit %d bytes",
            __version__,
            self.model.name,
            self.scheme,
            self.host,
            self.http_port,
            self.model.name,
            self.model.name,
            self.max_body_bytes,
        )
        try:
            await self._uvicorn.serve(sockets=[sock])
        finally:
            if grpc_server is not None:
                await grpc_server.stop()
        if not self._uvicorn.started:
            raise OSError(f"the HTTP server could not start on {self.host}:{self.http_port}")


def bind_http(host: str, port: int) -> socket.socket:
    """The listening socket of the HTTP server, bound before anything says it serves.

    Args:
        host: Listen address.
        port: TCP port.

    Returns:
        A bound socket (uvicorn listens on it).

    Raises:
        ConfigError: The port is in use, or the address is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it Nagle's algorithm and delayed ACKs add ~40 ms to small answers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, no sharing
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"HTTP port {host}:{port} is in use (another server listens there); choose "
                "another --http_port or stop that server"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port} for HTTP: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _quiet_signals() -> Any:
    """Make SIGTERM/SIGINT end :meth:`EdgeServer.run` normally after uvicorn's graceful stop.

    uvicorn re-raises the signal it caught once it has shut down; with these handlers in place
    that re-raise is a no-op, so the model is released and the process exits with status 0.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def configure_logging(level: str | int = "INFO") -> None:
    """KServe's log format for kserve, uvicorn and kfedge loggers (once per process)."""
    from kserve.logging import configure_logging as kserve_configure_logging
    from kserve.logging import logger as kserve_logger

    if not kserve_logger.handlers:
        kserve_configure_logging()
    klog = logging.getLogger("kfedge")
    if not klog.handlers:
        klog.handlers = list(kserve_logger.handlers)
        klog.propagate = False
    klog.setLevel(level)


def serve(
    model_path_or_uri: str,
    name: str = "model",
    port: int = 8080,
    host: str = "127.0.0.1",
    *,
    grpc_port: int | None = None,
    threads: int | None = None,
    providers: list[str] | None = None,
    device: str = "CPU",
    provider_options: dict[str, dict[str, str]] | None = None,
    delegate: str | None = None,
    allow_cpu_fallback: bool = True,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int | None = None,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    infer_workers: int | None = DEFAULT_INFER_WORKERS,
    max_batch_size: int = 0,
    max_batch_wait_ms: float = 0.0,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    decode_processes: int = 1,
    download_dir: str | None = None,
    log_level: str = "INFO",
) -> None:
    """Serve one .tflite / .onnx model over KServe V1 + V2 REST (and gRPC) until stopped.

    Blocks until SIGTERM / SIGINT. The model is loaded once before the server listens.

    Args:
        model_path_or_uri: Candidate directory, model file, or ``s3://`` / ``file://`` URI.
        name: Model name on the endpoint paths.
        port: HTTP port.
        host: Listen address (default loopback only; ``0.0.0.0`` to accept remote clients).
        grpc_port: Also serve the V2 gRPC protocol on this port (on ``host``); None = off.
        threads: Inference threads of the runtime, in all.
        providers: ONNX Runtime execution providers in order of preference.
        device: OpenVINO device of an OpenVINO IR model (``CPU``, ``GPU``, ``NPU``).
        provider_options: ONNX Runtime options per provider.
        delegate: External TFLite delegate library.
        allow_cpu_fallback: Run on the CPU when the accelerator is absent (else refuse).
        max_batch: Largest batch one request may carry (bigger -> 400).
        max_body_bytes: Request body limit (bigger -> 400); None = derived from the model.
        body_timeout: Seconds a request body may take to arrive (then 408).
        max_inflight: Requests with a body read or answered at once (more -> 503).
        infer_workers: Inference workers, one interpreter each; None = one per CPU.
        max_batch_size: Dynamic batching of concurrent requests up to this many examples
            (0 = off).
        max_batch_wait_ms: How long a request may wait for others to join its batch.
        ssl_certfile: PEM certificate: serve HTTPS (and gRPC over TLS).
        ssl_keyfile: PEM private key of the certificate.
        decode_processes: Processes that parse large bodies (0 = worker threads).
        download_dir: Where a remote model is downloaded (default: a temp directory).
        log_level: Level of kfedge's log lines.

    Raises:
        KfedgeError: The model cannot be served, or the server cannot start (a port in use,
            bad TLS files: :class:`~kfedge.errors.ConfigError`), before anything is served.
    """
    configure_logging(log_level)
    model = EdgeModel(
        name,
        model_path_or_uri,
        threads=threads,
        providers=providers,
        device=device,
        provider_options=provider_options,
        delegate=delegate,
        allow_cpu_fallback=allow_cpu_fallback,
        max_batch=max_batch,
        infer_workers=infer_workers,
        download_dir=download_dir,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
    )
    server = EdgeServer(
        model,
        host=host,
        http_port=port,
        grpc_port=grpc_port,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
        max_inflight=max_inflight,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        decode_processes=decode_processes,
    )
    server.bind()
    model.load()
    server.run()
