"""KServe's gRPC inference service (Open Inference Protocol) on a chosen address.

KServe's own gRPC server binds ``[::]``; this one listens on the server's ``host``. Errors reach
gRPC clients through KServe's ``ExceptionToStatusInterceptor`` (``InvalidInput`` ->
INVALID_ARGUMENT, ``ModelNotReady`` -> UNAVAILABLE), which is why the model turns kfedge errors
into KServe's (:func:`kfedge.serving.errors.to_kserve_error`).
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

from grpc import aio
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

log = logging.getLogger("kfedge.serving")

#: Threads of the gRPC server.
DEFAULT_GRPC_THREADS = 4


class GRPCServer:
    """KServe's gRPC inference service on ``host:port``.

    Args:
        host: Listen address (``0.0.0.0`` / ``::`` / empty = every address).
        port: gRPC port.
        dataplane: The data plane with the registered model.
        repo_ext: KServe's model repository extension.
        max_message_bytes: Largest message sent or received.
        grace_period: Seconds in-flight calls get at :meth:`stop`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        dataplane: DataPlane,
        repo_ext: ModelRepositoryExtension,
        max_message_bytes: int,
        grace_period: float,
    ) -> None:
        self.address = f"{grpc_host(host)}:{port}"
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
            OSError: The address cannot be bound.
        """
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(ExceptionToStatusInterceptor(),),
            options=[
                ("grpc.max_send_message_length", self._max),
                ("grpc.max_receive_message_length", self._max),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._dataplane, self._repo_ext), self._server
        )
        if self._server.add_insecure_port(self.address) == 0:
            raise OSError(f"gRPC server could not bind {self.address}")
        await self._server.start()
        log.info("gRPC (Open Inference Protocol) listening on %s", self.address)

    async def stop(self) -> None:
        """Stop, giving in-flight calls the grace period."""
        if self._server is not None:
            await self._server.stop(grace=self._grace)


def grpc_host(host: str) -> str:
    """The listen address as gRPC spells it (``[::]`` for every address, IPv6 in brackets)."""
    if host in ("", "0.0.0.0", "::"):
        return "[::]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
