"""The request-body limit: bodies over ``max_body_bytes`` are refused with 400 ``{"error": ...}``.

400 is the status the Open Inference Protocol uses for every bad request (HTTP's own 413 was
considered; clients of the protocol look for 400 + ``error``). A ``Content-Length`` over the
limit is refused before any of the body is read; a chunked body is cut off as soon as it passes
the limit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from kserve.errors import InvalidInput

log = logging.getLogger("kfedge.serving")

#: Largest request body accepted unless configured otherwise (bytes).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class RequestTooLarge(InvalidInput):
    """The request body is over the server's limit."""


#: A refused body up to this many times the limit is read and discarded after the answer.
DRAIN_FACTOR = 4
#: At most this long is spent discarding a refused body.
DRAIN_SECONDS = 5.0


async def _discard(receive: Any, max_bytes: int) -> None:
    seen = 0
    while seen < max_bytes:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyLimitMiddleware:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 400 ``{"error": ...}``.

    A ``Content-Length`` over the limit is answered at once, before the body is read (and without
    ``100 Continue``); the rest of such a body, up to ``DRAIN_FACTOR`` times the limit and
    ``DRAIN_SECONDS``, is then read and discarded so that simple clients see the answer. A body
    without a length (chunked) is counted while it streams in and refused when it passes the
    limit.

    Args:
        app: The ASGI application.
        max_bytes: Largest accepted body in bytes.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: str) -> str:
        return (
            f"request body of {size} is over this server's limit of {self.max_bytes} bytes "
            f"({self.max_bytes / 2**20:.4g} MiB); send a smaller batch or use the binary "
            "tensor extension"
        )

    async def _reject(
        self, send: Any, message: str, receive: Any = None, drain_bytes: int = 0
    ) -> None:
        body = orjson.dumps({"error": message})
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": drain_bytes > 0})
        if drain_bytes > 0:
            # The answer is already on the wire. Like nginx's lingering close, read and discard
            # (never buffer) what the client is still sending, so that clients which read the
            # response only after sending the whole body see the 400 instead of a broken pipe.
            try:
                await asyncio.wait_for(_discard(receive, drain_bytes), timeout=DRAIN_SECONDS)
            except TimeoutError:
                pass
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: D102
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._reject(send, f"invalid Content-Length header {length.decode()!r}")
                return
            if declared > self.max_bytes:
                log.info("400: body of %d bytes refused (limit %d)", declared, self.max_bytes)
                expects_continue = any(
                    k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"]
                )
                drain = (
                    0 if expects_continue or declared > DRAIN_FACTOR * self.max_bytes else declared
                )
                await self._reject(send, self._message(f"{declared} bytes"), receive, drain)
                return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise RequestTooLarge(self._message(f"more than {self.max_bytes} bytes"))
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own answer to the cut-off body is replaced by ours
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except RequestTooLarge:
            pass
        if exceeded and not started:
            log.info("400: streamed body over the limit of %d bytes refused", self.max_bytes)
            await self._reject(send, self._message(f"more than {self.max_bytes} bytes"))
