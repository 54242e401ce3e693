"""KServe's gRPC inference service (Open Inference Protocol) on a chosen address.

KServe's own gRPC server binds ``[::]``; this one listens on the server's ``host``, without
``SO_REUSEPORT`` (gRPC's default), so a second server cannot silently share the port and take
half of the connections: it fails to start. TLS when given a certificate and key.

Errors reach gRPC clients with the statuses of KServe's ``ExceptionToStatusInterceptor``
(``InvalidInput`` -> INVALID_ARGUMENT, ``ModelNotReady`` -> UNAVAILABLE, ...; the model turns
kfedge errors into KServe's, :func:`kfedge.serving.errors.to_kserve_error`), but each is logged
in one line, as the REST routes do; only a server fault is logged with its traceback.
"""

from __future__ import annotations

import errno
import logging
import socket
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from grpc_interceptor import AsyncExceptionToStatusInterceptor
from grpc_interceptor.exceptions import GrpcException
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from kfedge.errors import ConfigError, KfedgeError
from kfedge.serving.errors import http_status

log = logging.getLogger("kfedge.serving")

#: Threads of the gRPC server.
DEFAULT_GRPC_THREADS = 4


_GRPC_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
                503: grpc.StatusCode.UNAVAILABLE}  # fmt: skip


def grpc_status(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status of an error raised while serving a call (KServe's mapping)."""
    if isinstance(exc, (InferenceError, InvalidInput, UnsupportedProtocol)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, (ServerNotReady, ServerNotLive, ModelNotReady)):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(exc, KfedgeError):
        return _GRPC_STATUS.get(http_status(exc), grpc.StatusCode.INTERNAL)
    return grpc.StatusCode.INTERNAL


class OneLineErrors(AsyncExceptionToStatusInterceptor):
    """Errors to gRPC statuses, each logged in one line (a traceback only for server faults)."""

    async def handle_exception(  # noqa: D102
        self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str
    ) -> None:
        if isinstance(ex, GrpcException):
            await super().handle_exception(ex, request_or_iterator, context, method_name)
            return
        status = grpc_status(ex)
        method = method_name.rsplit("/", 1)[-1]
        if status is grpc.StatusCode.INTERNAL:
            log.error("gRPC %s: internal error: %s", method, ex, exc_info=ex)
            await context.abort(status, "Internal server error")
            return
        reason = str(getattr(ex, "reason", None) or ex)
        (log.warning if status is grpc.StatusCode.UNAVAILABLE else log.info)(
            "gRPC %s %s: %s", method, status.name, reason
        )
        await context.abort(status, reason)


def port_in_use(host: str, port: int) -> bool:
    """Whether another socket listens on ``host:port`` (a plain bind fails with EADDRINUSE)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host.strip("[]") if host not in ("", "[::]") else "", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class GRPCServer:
    """KServe's gRPC inference service on ``host:port``.

    Args:
        host: Listen address (``0.0.0.0`` / ``::`` / empty = every address).
        port: gRPC port.
        dataplane: The data plane with the registered model.
        repo_ext: KServe's model repository extension.
        max_message_bytes: Largest message sent or received.
        grace_period: Seconds in-flight calls get at :meth:`stop`.
        ssl_certfile: PEM certificate (chain) for TLS; None = plaintext.
        ssl_keyfile: PEM private key for TLS.
    """

    def __init__(
        self,
        host: str,
        port: int,
        dataplane: DataPlane,
        repo_ext: ModelRepositoryExtension,
        max_message_bytes: int,
        grace_period: float,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.address = f"{grpc_host(host)}:{port}"
        self.tls = (ssl_certfile, ssl_keyfile) if ssl_certfile and ssl_keyfile else None
        self._dataplane = dataplane
        self._repo_ext = repo_ext
        self._max = max_message_bytes
        self._grace = grace_period
        self._server: Any = None

    async def start(self, max_workers: int) -> None:
        """Bind and start serving.

        Args:
            max_workers: Threads of the server.

        Raises:
            ConfigError: The address cannot be bound (in use, or not this machine's).
        """
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(OneLineErrors(),),
            options=[
                ("grpc.max_send_message_length", self._max),
                ("grpc.max_receive_message_length", self._max),
                ("grpc.so_reuseport", 0),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._dataplane, self._repo_ext), self._server
        )
        try:
            if self.tls is not None:
                cert, key = (Path(p).read_bytes() for p in self.tls)
                creds = grpc.ssl_server_credentials([(key, cert)])
                bound = self._server.add_secure_port(self.address, creds)
            else:
                bound = self._server.add_insecure_port(self.address)
        except RuntimeError:
            bound = 0
        if bound == 0:
            self._server = None
            where = f"{self.host}:{self.port}"
            if port_in_use(self.host, self.port):
                raise ConfigError(
                    f"gRPC port {where} is in use (another server listens there); choose "
                    "another --grpc_port or stop that server"
                )
            raise ConfigError(f"gRPC cannot listen on {where}")
        await self._server.start()
        log.info(
            "gRPC (Open Inference Protocol%s) listening on %s",
            ", TLS" if self.tls else "",
            self.address,
        )

    async def stop(self) -> None:
        """Stop, giving in-flight calls the grace period."""
        if self._server is not None:
            await self._server.stop(grace=self._grace)


def grpc_host(host: str) -> str:
    """The listen address as gRPC spells it (``[::]`` for every address, IPv6 in brackets)."""
    if host in ("", "0.0.0.0", "::"):
        return "[::]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
