"""What a request body may cost: size (derived from the model), read time, count, compression.

* **Size.** The limit is derived from the model: its largest batch times the size of one
  example written as JSON (:data:`JSON_BYTES_PER_VALUE` per value, the worst case of the
  protocol's text form), with a floor; ``max_body_bytes`` (default 16 MiB) caps it
  (:func:`model_body_limit`). A ``Content-Length`` over it is refused before any of the body
  is read; a chunked or gzip body as soon as it (decompressed) passes it. 400 is the status the
  Open Inference Protocol uses for every bad request (HTTP's 413 was considered; clients of
  the protocol look for 400 + ``error``).
* **Read time.** A body must arrive within ``body_timeout`` seconds, else 408 and the
  connection is closed: a client that stalls mid-body holds no memory for longer.
* **Count.** At most ``max_inflight`` requests with a body are read or answered at once; more
  get 503 with ``Retry-After`` at once, without their body being read. Requests without a body
  (health, readiness, metadata) are never limited, so probes keep answering.
* **Compression.** ``Content-Encoding: gzip`` is decompressed as it streams in, the
  decompressed size counting against the limit (a zip bomb is cut off); other encodings 415.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Iterable
from typing import Any

import orjson
from kserve.errors import InvalidInput

from kfedge.serving.options import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_INFLIGHT

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_INFLIGHT",
    "BodyLimitMiddleware",
    "model_body_limit",
]

log = logging.getLogger("kfedge.serving")

#: Largest request body accepted unless configured otherwise (bytes): the cap of the limit.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Bytes one tensor value may take in a JSON body (``-0.30000001192092896, `` is 22).
JSON_BYTES_PER_VALUE = 24
#: Room for the request's JSON around the data (names, shape, parameters).
JSON_ENVELOPE_BYTES = 64 * 1024
#: The derived limit is never below this (models with tiny inputs still take small requests).
BODY_LIMIT_FLOOR = 256 * 1024
#: A refused body up to this many times the limit is read and discarded after the answer.
DRAIN_FACTOR = 4
#: ... and one up to this size whatever the limit (a small model's limit is a few hundred KB:
#: a 12 MB body closed unread reached its client as a connection reset, not as the answer).
DRAIN_FLOOR_BYTES = 64 * 1024 * 1024
#: At most this long is spent discarding a refused body.
DRAIN_SECONDS = 5.0


class BodyRefused(InvalidInput):
    """The middleware cut the body off; it answers itself (the app's answer is dropped)."""


class RequestTooLarge(BodyRefused):
    """The request body is over the server's limit."""


class BodyTimeout(BodyRefused):
    """The request body did not arrive within the body timeout."""


class BadEncoding(Exception):
    """The body's Content-Encoding is not one the server decodes (415) or is corrupt (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def model_body_limit(
    inputs: Iterable[Any], max_batch: int, cap: int = DEFAULT_MAX_BODY_BYTES
) -> int:
    """The body limit for a model: its largest batch written as JSON, with a floor, at most ``cap``.

    Args:
        inputs: The model's input specs (``shape`` with ``None`` for dynamic dimensions, batch
            first).
        max_batch: Largest batch one request may carry.
        cap: Upper bound (``--max_body_bytes``).

    Returns:
        The limit in bytes: ``cap`` when an input has a dynamic dimension other than the batch
        (its size is unknown), else ``max(BODY_LIMIT_FLOOR, max_batch x values per example x
        JSON_BYTES_PER_VALUE + JSON_ENVELOPE_BYTES)``, never more than ``cap``.
    """
    values = 0
    for spec in inputs:
        dims = list(spec.shape)[1:]
        if any(d is None for d in dims):
            return cap
        values += math.prod(int(d) for d in dims)
    derived = max(BODY_LIMIT_FLOOR, max_batch * values * JSON_BYTES_PER_VALUE + JSON_ENVELOPE_BYTES)
    return min(cap, derived)


async def _discard(receive: Any, max_bytes: int) -> None:
    seen = 0
    while seen < max_bytes:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


class _Gunzip:
    """Streaming gzip decompression that never produces more than ``limit`` + 1 bytes."""

    def __init__(self, limit: int) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.limit = limit
        self.out = 0

    def feed(self, data: bytes, final: bool) -> bytes:
        chunks = []
        try:
            while data:
                chunk = self._z.decompress(data, self.limit + 1 - self.out)
                self.out += len(chunk)
                chunks.append(chunk)
                if self.out > self.limit:
                    raise RequestTooLarge("over")
                data = self._z.unconsumed_tail
            if final and not self._z.eof:
                raise BadEncoding(400, "the gzip body ends before its end marker (truncated)")
        except zlib.error as exc:
            raise BadEncoding(400, f"the body is not valid gzip ({exc})") from None
        return b"".join(chunks)


class BodyLimitMiddleware:
    """ASGI middleware enforcing the body size, read time, in-flight count and encoding limits.

    A ``Content-Length`` over the limit is answered at once, before the body is read (and
    without ``100 Continue``); the rest of such a body, up to ``DRAIN_FACTOR`` times the limit
    and ``DRAIN_SECONDS``, is then read and discarded so that simple clients see the answer. A
    body without a length (chunked) or gzip-compressed is counted while it streams in and
    refused when it (decompressed) passes the limit.

    Args:
        app: The ASGI application.
        max_bytes: Largest accepted body in bytes (after decompression).
        body_timeout: Seconds a body may take to arrive (408 after that).
        max_inflight: Requests with a body read or answered at once (503 beyond).
    """

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_bytes}")
        if body_timeout <= 0:
            raise ValueError(f"body_timeout must be > 0 seconds, got {body_timeout}")
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout
        self.max_inflight = max_inflight
        self.inflight = 0

    def _message(self, size: str, decompressed: bool = False) -> str:
        return (
            f"request body of {size} is over this server's limit of {self.max_bytes} bytes "
            f"({self.max_bytes / 2**20:.4g} MiB){' once decompressed' if decompressed else ''}; "
            "send a smaller batch or use the binary tensor extension"
        )

    async def _reject(
        self,
        send: Any,
        message: str,
        receive: Any = None,
        drain_bytes: int = 0,
        status: int = 400,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = orjson.dumps({"error": message})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": drain_bytes > 0})
        if drain_bytes > 0:
            # The answer is already on the wire. Like nginx's lingering close, read and discard
            # (never buffer) what the client is still sending, so that clients which read the
            # response only after sending the whole body see the answer instead of a broken pipe.
            try:
                await asyncio.wait_for(_discard(receive, drain_bytes), timeout=DRAIN_SECONDS)
            except TimeoutError:
                pass
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _drain(self, scope: dict[str, Any], declared: int) -> int:
        expects_continue = (_header(scope, b"expect") or b"").lower() == b"100-continue"
        most = max(DRAIN_FACTOR * self.max_bytes, DRAIN_FLOOR_BYTES)
        return 0 if expects_continue or declared > most else declared

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: D102
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        declared = 0
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._reject(send, f"invalid Content-Length header {length[:40]!r}")
                return
        has_body = declared > 0 or _header(scope, b"transfer-encoding") is not None
        if not has_body:
            await self.app(scope, receive, send)
            return
        encoding = (_header(scope, b"content-encoding") or b"identity").strip().lower()
        if encoding not in (b"identity", b"gzip", b"x-gzip"):
            shown = encoding.decode("latin-1")[:40]
            await self._reject(
                send,
                f"Content-Encoding {shown!r} is not supported; send the body uncompressed or "
                "with Content-Encoding: gzip",
                receive,
                self._drain(scope, declared) if declared <= self.max_bytes else 0,
                status=415,
            )
            return
        gunzip = _Gunzip(self.max_bytes) if encoding != b"identity" else None
        if declared > self.max_bytes and gunzip is None:
            log.info("400: body of %d bytes refused (limit %d)", declared, self.max_bytes)
            drain = self._drain(scope, declared)
            await self._reject(send, self._message(f"{declared} bytes"), receive, drain)
            return
        if self.inflight >= self.max_inflight:
            log.warning("503: %d requests with a body in progress, one more refused", self.inflight)
            await self._reject(
                send,
                f"server busy: {self.inflight} requests with a body are in progress (limit "
                f"{self.max_inflight}); retry shortly",
                receive,
                self._drain(scope, declared) if declared <= self.max_bytes else 0,
                status=503,
                headers=[(b"retry-after", b"1")],
            )
            return
        self.inflight += 1
        try:
            await self._limited(scope, receive, send, gunzip)
        finally:
            self.inflight -= 1

    async def _limited(
        self, scope: dict[str, Any], receive: Any, send: Any, gunzip: _Gunzip | None
    ) -> None:
        deadline = time.monotonic() + self.body_timeout
        received = 0
        failure: tuple[int, str] | None = None
        started = False
        body_done = False
        if gunzip is not None:  # the app sees the decompressed body, without its encoding
            drop = (b"content-encoding", b"content-length")
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in drop]}

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, failure, body_done
            if failure is not None:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()  # waits for the disconnect, as the server would
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                failure = (
                    408,
                    f"request body not received within {self.body_timeout:g} s "
                    f"({received} bytes arrived); the connection is closed",
                )
                raise BodyTimeout(failure[1]) from None
            if message["type"] != "http.request":
                return message
            more = message.get("more_body", False)
            body_done = not more
            if gunzip is not None:
                try:
                    message = {**message, "body": gunzip.feed(message.get("body", b""), not more)}
                except RequestTooLarge:
                    failure = (400, self._message(f"more than {self.max_bytes} bytes", True))
                    raise RequestTooLarge(failure[1]) from None
                except BadEncoding as exc:
                    failure = (exc.status, str(exc))
                    raise RequestTooLarge(failure[1]) from None
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                failure = (400, self._message(f"more than {self.max_bytes} bytes"))
                raise RequestTooLarge(failure[1])
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if failure is not None:
                return  # the app's own answer to the cut-off body is replaced by ours
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except (RequestTooLarge, BodyTimeout):
            pass
        if failure is not None and not started:
            status, message = failure
            (log.warning if status == 408 else log.info)("%d: %s", status, message)
            await self._reject(send, message, status=status)
