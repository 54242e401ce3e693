"""Decoding and checking request bodies without stalling the event loop.

Parsing JSON and turning it into arrays runs in C code that holds Python's global interpreter
lock: a thread does not help while it runs (a 13 MB V1 body, nested lists, holds it for about a
second). So bodies are handled by size:

* up to :data:`INLINE_BODY_BYTES`: on the event loop (a thread hop costs more than the work);
* up to :data:`PROCESS_BODY_BYTES`: in a worker thread (tens of milliseconds at most);
* larger: in a decode process (``processes`` of them, started with the server), which parses,
  checks against the model's inputs and sends back the arrays; the server's own lock stays free,
  so health and readiness answer while it works. With ``processes=0`` they go to a thread too.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import SimpleNamespace
from typing import Any

import anyio

log = logging.getLogger("kfedge.serving")

#: Bodies up to this size are decoded on the event loop.
INLINE_BODY_BYTES = 64 * 1024
#: Bodies over this size are decoded in a decode process (when there is one).
PROCESS_BODY_BYTES = 1024 * 1024

_DATAPLANE: Any = None


def _decode_job(
    body: bytes,
    headers: dict[str, str],
    protocol: str,
    model_name: str,
    inputs: list[Any],
    outputs: list[Any],
    max_batch: int,
) -> tuple[Any, dict[str, Any]]:
    """In the decode process: decode and check one body against the model's tensor specs."""
    global _DATAPLANE
    from kserve.model_repository import ModelRepository

    from kfedge.serving.dataplane import EdgeDataPlane
    from kfedge.serving.model import EdgeModel

    if _DATAPLANE is None:
        _DATAPLANE = EdgeDataPlane(model_registry=ModelRepository())
    payload, attributes = _DATAPLANE.decode(body, headers, protocol, model_name)
    model = EdgeModel(model_name, "", max_batch=max_batch, infer_workers=1)
    model.runner = SimpleNamespace(inputs=inputs, outputs=outputs)  # type: ignore[assignment]
    model.ready = True
    return model.check(payload), attributes


def _warm() -> bool:
    import kfedge.serving.dataplane  # noqa: F401 - imports done before the first request
    import kfedge.serving.model  # noqa: F401

    return True


class BodyDecoder:
    """Decodes and checks request bodies by size: inline, in a thread, or in a decode process.

    Args:
        processes: Decode processes for bodies over :data:`PROCESS_BODY_BYTES` (0 = threads).
    """

    def __init__(self, processes: int = 0) -> None:
        if processes < 0:
            raise ValueError(f"decode processes must be >= 0, got {processes}")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the decode processes (and their imports) before the first request needs them."""
        if self.processes and self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn")
            )
            for _ in range(self.processes):
                self._pool.submit(_warm)

    def close(self) -> None:
        """Stop the decode processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def decode(
        self,
        dataplane: Any,
        model: Any,
        body: bytes,
        headers: dict[str, str],
        protocol: str,
        model_name: str,
    ) -> tuple[Any, dict[str, Any]]:
        """Decode ``body`` and check it against ``model``.

        Args:
            dataplane: The data plane (its ``decode``).
            model: The model (an :class:`~kfedge.serving.model.EdgeModel`: its ``check``).
            body: The raw (decompressed) body.
            headers: Request headers, lower-case names.
            protocol: ``v1`` or ``v2``.
            model_name: The model the request is for.

        Returns:
            The checked payload and the request's CloudEvent attributes.
        """

        def work() -> tuple[Any, dict[str, Any]]:
            payload, attributes = dataplane.decode(body, headers, protocol, model_name)
            check = getattr(model, "check", None)
            return (check(payload) if check is not None else payload), attributes

        if len(body) <= INLINE_BODY_BYTES:
            return work()
        runner = getattr(model, "runner", None)
        if len(body) > PROCESS_BODY_BYTES and self._pool is not None and runner is not None:
            job = (body, headers, protocol, model_name, runner.inputs, runner.outputs)
            try:
                future = self._pool.submit(_decode_job, *job, model.max_batch)
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                log.warning("the decode process died; starting another (this body: a thread)")
                self._pool = None
                self.start()
        return await anyio.to_thread.run_sync(work)
