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
* **Request-body limit** (:mod:`~kfedge.serving.limits`). Bodies over ``max_body_bytes``
  (default 16 MiB) are refused with **400** ``{"error": "... over the limit of N bytes ..."}``.
* **Concurrency.** Inference runs in a thread pool, not on the event loop, so health checks and
  metadata answer while a batch runs (the TFLite runner serialises on its own lock, ONNX Runtime
  sessions run concurrently).
* **Schema-conformant responses** (:mod:`~kfedge.serving.app`). Optional fields that are unset
  are left out instead of being sent as ``null``.
* **No collector stalls.** Everything allocated before serving is frozen out of the cyclic
  garbage collector (``gc.freeze``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from typing import Any

import uvicorn
from kserve.model_repository import ModelRepository
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from kfedge._version import __version__
from kfedge.serving.app import build_app
from kfedge.serving.dataplane import EdgeDataPlane
from kfedge.serving.grpc_server import DEFAULT_GRPC_THREADS, GRPCServer
from kfedge.serving.limits import DEFAULT_MAX_BODY_BYTES
from kfedge.serving.model import DEFAULT_INFER_WORKERS, DEFAULT_MAX_BATCH, EdgeModel

log = logging.getLogger("kfedge.serving")


class EdgeServer:
    """One model behind KServe's REST (and optionally gRPC) endpoints on a chosen address.

    Args:
        model: The model to serve (loaded in :meth:`run` if not yet loaded).
        host: Address to listen on (``127.0.0.1`` for loopback only, ``0.0.0.0`` in a pod).
        http_port: HTTP port.
        grpc_port: gRPC port, or None for no gRPC server.
        max_body_bytes: Largest accepted request body (bigger -> 400).
        grpc_threads: Threads of the gRPC server.
        grace_period: Seconds in-flight requests get at shutdown.
        timeout_keep_alive: Keep-alive timeout (longer than a proxy's idle timeout).
        access_log: Log one line per request.
    """

    def __init__(
        self,
        model: EdgeModel,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8080,
        grpc_port: int | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        grpc_threads: int = DEFAULT_GRPC_THREADS,
        grace_period: float = 30,
        timeout_keep_alive: int = 65,
        access_log: bool = True,
    ) -> None:
        self.model = model
        self.host = host
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.max_body_bytes = max_body_bytes
        self.grpc_threads = grpc_threads
        self.grace_period = grace_period
        self.timeout_keep_alive = timeout_keep_alive
        self.access_log = access_log
        self.repository = ModelRepository()
        self.repository.update(model)
        self.dataplane = EdgeDataPlane(model_registry=self.repository)
        self.repo_ext = ModelRepositoryExtension(model_registry=self.repository)
        self.app = build_app(self.dataplane, self.repo_ext, max_body_bytes)
        self._uvicorn: uvicorn.Server | None = None

    def run(self) -> None:
        """Load the model (once), listen, and serve until SIGTERM / SIGINT."""
        if not self.model.ready:
            self.model.load()
        # Everything allocated so far (imports, the model) lives as long as the server: keep it
        # out of the cyclic collector, so that the full collections large V1 bodies trigger
        # (tens of thousands of nested lists) scan only request objects (was ~60 ms stalls).
        gc.collect()
        gc.freeze()
        restore = _quiet_signals()
        try:
            asyncio.run(self._serve())
        finally:
            restore()
            self.model.stop()

    def should_exit(self) -> None:
        """Ask a running server to shut down gracefully."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    async def _serve(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.http_port,
            log_config=None,
            lifespan="off",
            access_log=self.access_log,
            timeout_graceful_shutdown=int(self.grace_period),
            timeout_keep_alive=self.timeout_keep_alive,
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
            )
            await grpc_server.start(self.grpc_threads)
        log.info(
            "kfedge model server %s: model '%s' on http://%s:%d (V1 /v1/models/%s:predict, "
            "V2 /v2/models/%s/infer), body limit %d bytes",
            __version__,
            self.model.name,
            self.host,
            self.http_port,
            self.model.name,
            self.model.name,
            self.max_body_bytes,
        )
        try:
            await self._uvicorn.serve()
        finally:
            if grpc_server is not None:
                await grpc_server.stop()
        if not self._uvicorn.started:
            raise OSError(f"the HTTP server could not start on {self.host}:{self.http_port}")


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
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    infer_workers: int = DEFAULT_INFER_WORKERS,
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
        threads: Inference threads of the runtime.
        providers: ONNX Runtime execution providers in order of preference.
        max_batch: Largest batch one request may carry (bigger -> 400).
        max_body_bytes: Largest request body (bigger -> 400).
        infer_workers: Threads running inference off the event loop.
        download_dir: Where a remote model is downloaded (default: a temp directory).
        log_level: Level of kfedge's log lines.
    """
    configure_logging(log_level)
    model = EdgeModel(
        name,
        model_path_or_uri,
        threads=threads,
        providers=providers,
        max_batch=max_batch,
        infer_workers=infer_workers,
        download_dir=download_dir,
    )
    model.load()
    EdgeServer(
        model, host=host, http_port=port, grpc_port=grpc_port, max_body_bytes=max_body_bytes
    ).run()
