"""kfedge's model server: KServe's data plane and endpoints, with the gaps of KServe 0.21 closed.

What this adds to ``kserve.ModelServer`` (see ARCHITECTURE.md §4):

* **Bind address.** KServe binds HTTP to ``0.0.0.0`` and gRPC to ``[::]``. Here both listen on
  ``host`` (``127.0.0.1`` for :func:`serve`, ``0.0.0.0`` for the container entry point).
* **Request checks.** :class:`~kfedge.serving.model.EdgeModel` checks every request against the
  model's declared inputs (name, datatype, shape, numeric data, batch size) -> 400.
* **Errors in the Open Inference Protocol's form.** Schema errors that FastAPI answers with 422
  and ``{"detail": [...]}`` come back as 400 ``{"error": "..."}``; every other error is
  ``{"error": "..."}`` too. Malformed JSON -> 400, unknown model -> 404, model not loaded -> 503;
  the binary tensor extension is decoded here with size checks, so a malformed binary request is a
  400, not a 500. Only a real server fault is a 500.
* **Request-body limit.** Bodies over ``max_body_bytes`` (default 16 MiB) are refused with
  **400** ``{"error": "... over the limit of N bytes ..."}`` — the status the Open Inference
  Protocol uses for every bad request (HTTP's own 413 was considered; clients of the protocol
  look for 400 + ``error``). A ``Content-Length`` over the limit is refused before any of the
  body is read; a chunked body is cut off as soon as it passes the limit.
* **Concurrency.** Inference runs in a thread pool, not on the event loop, so health checks and
  metadata answer while a batch runs (the TFLite runner serialises on its own lock, ONNX Runtime
  sessions run concurrently).
* **Schema-conformant responses.** Optional fields that are unset are left out instead of being
  sent as ``null`` (the OIP schema types them as string / object).

Versioned model paths (``/v2/models/{name}/versions/{v}/...``) answer 501, as in KServe. The model
repository load/unload endpoints are not exposed: the server serves the one model it loaded at
start (scale with replicas, roll out with a new InferenceService revision).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import signal
import threading
from concurrent import futures
from typing import Any

import numpy as np
import orjson
import pydantic
import uvicorn
from cloudevents.sdk.converters.util import has_binary_headers
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import aio
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotLive, ServerNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import JSON_HEADERS, DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import metrics_handler
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_datamodels import (
    InferenceRequest,
    InferenceResponse,
    ListModelsResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from starlette.exceptions import HTTPException as StarletteHTTPException

from kfedge._version import __version__
from kfedge.errors import KfedgeError
from kfedge.serving.model import (
    DEFAULT_INFER_WORKERS,
    DEFAULT_MAX_BATCH,
    NP_DTYPES,
    EdgeModel,
)

log = logging.getLogger("kfedge.serving")

#: Largest request body accepted unless configured otherwise (bytes).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Threads of the gRPC server.
DEFAULT_GRPC_THREADS = 4
_MAX_ERRORS_SHOWN = 5


# ------------------------------------------------------------------------------------ errors
class OrjsonResponse(JSONResponse):
    """JSON via orjson (numpy-aware; NaN becomes null instead of a 500)."""

    def render(self, content: Any) -> bytes:  # noqa: D102
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _error(status: int, message: str) -> OrjsonResponse:
    return OrjsonResponse(status_code=status, content={"error": message})


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One readable line from pydantic / FastAPI validation errors.

    Args:
        errors: ``exc.errors()`` of a ``RequestValidationError`` or ``ValidationError``.

    Returns:
        A message such as ``invalid inference request: inputs.0.shape: Input should be a
        valid list``.
    """
    parts: list[str] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "InferenceRequest")]
        if "bytes" in loc[:1]:
            continue  # the raw-bytes alternative of the V2 body; not what a JSON client meant
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            return f"malformed JSON body: {err.get('msg', 'JSON decode error')}" + (
                f" ({reason})" if reason else ""
            )
        where = ".".join(loc)
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    if not parts:
        return "invalid inference request"
    more = len(parts) - _MAX_ERRORS_SHOWN
    shown = "; ".join(parts[:_MAX_ERRORS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
    return f"invalid inference request: {shown}"


async def _validation_error_handler(_: Request, exc: RequestValidationError) -> OrjsonResponse:
    msg = describe_validation_errors(list(exc.errors()))
    log.info("400: %s", msg)
    return _error(400, msg)


async def _http_exception_handler(_: Request, exc: StarletteHTTPException) -> Response:
    return OrjsonResponse(
        status_code=exc.status_code,
        content={"error": str(exc.detail)},
        headers=getattr(exc, "headers", None),
    )


async def _invalid_input_handler(_: Request, exc: Exception) -> OrjsonResponse:
    log.info("400: %s", exc)
    return _error(400, str(exc))


async def _not_found_handler(_: Request, exc: Exception) -> OrjsonResponse:
    return _error(404, str(exc))


async def _unavailable_handler(_: Request, exc: Exception) -> OrjsonResponse:
    log.warning("503: %s", exc)
    return _error(503, str(exc))


async def _not_implemented_handler(_: Request, exc: Exception) -> OrjsonResponse:
    return _error(501, str(exc) or "not implemented")


async def _kfedge_error_handler(_: Request, exc: KfedgeError) -> OrjsonResponse:
    (log.info if exc.http_status < 500 else log.error)("%d: %s", exc.http_status, exc)
    return _error(exc.http_status, str(exc))


async def _server_error_handler(_: Request, exc: Exception) -> OrjsonResponse:
    log.error("internal error", exc_info=exc)
    return _error(500, f"internal server error: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------- binary extension
def decode_binary_request(body: bytes, headers: dict[str, str], model_name: str) -> InferRequest:
    """Decode a V2 request body that is not ``application/json``.

    With an ``Inference-Header-Content-Length`` header the body is the JSON header followed by
    the raw little-endian tensors of the inputs that declare ``parameters.binary_data_size``
    (the binary tensor data extension); every size is checked against the declared shape and
    datatype. Without the header the body must be a plain JSON inference request (as sent by
    clients that omit the content type).

    Args:
        body: Raw request body.
        headers: Request headers (lower-case names).
        model_name: Model the request is for.

    Returns:
        The request, with binary inputs as numpy arrays (no JSON round trip).

    Raises:
        InvalidInput: Anything malformed, with what was expected and what was found.
    """
    header_len = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    if header_len is None:
        try:
            req = InferenceRequest.model_validate_json(body)
        except pydantic.ValidationError as exc:
            raise InvalidInput(describe_validation_errors(list(exc.errors()))) from None
        return InferRequest.from_inference_request(req, model_name)
    try:
        json_len = int(header_len)
    except ValueError:
        raise InvalidInput(
            f"header Inference-Header-Content-Length must be an integer, got {header_len!r}"
        ) from None
    if not 0 < json_len <= len(body):
        raise InvalidInput(
            f"header Inference-Header-Content-Length is {json_len}, but the body has "
            f"{len(body)} bytes"
        )
    try:
        head = InferenceRequestHeader.model_validate_json(body[:json_len])
    except pydantic.ValidationError as exc:
        raise InvalidInput(describe_validation_errors(list(exc.errors()))) from None
    offset = json_len
    inputs: list[InferInput] = []
    for inp in head.inputs:
        params = dict(inp.parameters or {})
        size = params.get("binary_data_size")
        if inp.data is not None:
            inputs.append(InferInput(inp.name, inp.shape, inp.datatype, inp.data, params))
            continue
        if size is None:
            raise InvalidInput(
                f"input '{inp.name}' has neither 'data' nor parameters.binary_data_size"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(
                f"input '{inp.name}': binary_data_size must be a non-negative integer, got {size!r}"
            )
        dtype = NP_DTYPES.get(inp.datatype.upper())
        if dtype is None:
            raise InvalidInput(
                f"input '{inp.name}': binary data of datatype {inp.datatype} is not supported; "
                f"expected one of {sorted(NP_DTYPES)}"
            )
        if any(d < 0 for d in inp.shape):
            raise InvalidInput(f"input '{inp.name}': shape must not be negative, got {inp.shape}")
        need = math.prod(inp.shape) * dtype.itemsize
        if size != need:
            raise InvalidInput(
                f"input '{inp.name}': shape {inp.shape} of {inp.datatype} needs {need} bytes, "
                f"but binary_data_size is {size}"
            )
        if offset + size > len(body):
            raise InvalidInput(
                f"input '{inp.name}': {size} bytes of binary data declared at offset {offset}, "
                f"but the body ends at {len(body)}"
            )
        arr = np.frombuffer(body, dtype=dtype, count=math.prod(inp.shape), offset=offset)
        params.pop("binary_data_size", None)
        inputs.append(InferInput(inp.name, inp.shape, inp.datatype, arr, params))
        offset += size
    if offset != len(body):
        raise InvalidInput(
            f"the body has {len(body) - offset} bytes after the declared binary data "
            "(binary_data_size values do not add up)"
        )
    outputs = (
        [RequestedOutput(o.name, o.parameters or {}) for o in head.outputs]
        if head.outputs
        else None
    )
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=head.id,
        parameters=head.parameters,
        request_outputs=outputs,
    )


class _BinaryInput(pydantic.BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class _BinaryOutput(pydantic.BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequestHeader(pydantic.BaseModel):
    """The JSON header of a binary-extension V2 request (``data`` optional per input)."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[_BinaryInput]
    outputs: list[_BinaryOutput] | None = None


# --------------------------------------------------------------------------------- data plane
def _media_type(headers: Any) -> str:
    value = headers.get("content-type", "application/json") or "application/json"
    return value.split(";")[0].strip().lower()


class EdgeDataPlane(DataPlane):
    """KServe's data plane with strict decoding and a readiness that means "models loaded"."""

    async def ready(self) -> bool:
        """Server ready: at least one model is registered and all are loaded."""
        models = self.model_registry.get_models()
        return bool(models) and all(m.ready for m in models.values())

    def decode(
        self,
        body: Any,
        headers: Any,
        protocol_version: str = "v1",
        model_name: str | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """KServe's decode, with its unchecked failures (KeyError, ValueError...) made 400s."""
        if (
            protocol_version == "v1"
            and isinstance(body, bytes)
            and headers is not None
            and not has_binary_headers(headers)
            and _media_type(headers) in JSON_HEADERS
        ):
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"malformed JSON body: {exc}") from None
        try:
            return super().decode(body, headers, protocol_version, model_name)
        except InvalidInput:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"malformed request: {type(exc).__name__}: {exc}") from exc

    def decode_inference_request(
        self, body: bytes | InferenceRequest, headers: dict[str, str], model_name: str
    ) -> InferRequest:
        """V2 decode; raw bodies go through :func:`decode_binary_request`."""
        if isinstance(body, bytes):
            return decode_binary_request(body, headers, model_name)
        return InferRequest.from_inference_request(body, model_name)


# ------------------------------------------------------------------------------- body limit
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


# ----------------------------------------------------------------------------------- the app
def _register_v2_routes(
    app: FastAPI, dataplane: DataPlane, repo_ext: ModelRepositoryExtension | None
) -> None:
    """KServe's V2 routes, answering without ``null`` optional fields."""
    v2 = V2Endpoints(dataplane, repo_ext)
    router = APIRouter(prefix="/v2", tags=["V2"])
    opts: dict[str, Any] = {"methods": ["GET"], "response_model_exclude_none": True}
    router.add_api_route("", v2.metadata, response_model=ServerMetadataResponse, **opts)
    router.add_api_route("/", v2.metadata, response_model=ServerMetadataResponse, **opts)
    router.add_api_route("/health/live", v2.live, response_model=ServerLiveResponse, **opts)
    router.add_api_route("/health/ready", v2.ready, response_model=ServerReadyResponse, **opts)
    router.add_api_route("/models", v2.models, response_model=ListModelsResponse, **opts)
    for suffix in ("", "/versions/{model_version}"):
        router.add_api_route(
            "/models/{model_name}" + suffix,
            v2.model_metadata,
            response_model=ModelMetadataResponse,
            **opts,
        )
        router.add_api_route(
            "/models/{model_name}" + suffix + "/ready",
            v2.model_ready,
            response_model=ModelReadyResponse,
            **opts,
        )

    async def infer(
        raw_request: Request,
        raw_response: Response,
        model_name: str,
        request_body: InferenceRequest | bytes,
        model_version: str | None = None,
    ) -> Response:
        res = await v2.infer(raw_request, raw_response, model_name, request_body, model_version)
        if isinstance(res, InferenceResponse):
            return OrjsonResponse(res.model_dump(exclude_none=True))
        return _binary_response(res)

    for suffix in ("", "/versions/{model_version}"):
        router.add_api_route(
            "/models/{model_name}" + suffix + "/infer",
            infer,
            methods=["POST"],
            response_model=None,
        )
    app.include_router(router)


def _binary_response(res: Response) -> Response:
    """Re-encode the JSON header of a binary-extension answer without ``null`` fields."""
    header_len = res.headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    body = bytes(res.body)
    if header_len is None:
        return res
    n = int(header_len)
    head = {k: v for k, v in orjson.loads(body[:n]).items() if v is not None}
    new_head = orjson.dumps(head)
    return Response(
        content=new_head + body[n:],
        media_type="application/octet-stream",
        headers={INFERENCE_CONTENT_LENGTH_HEADER: str(len(new_head))},
    )


def build_app(
    dataplane: DataPlane,
    repo_ext: ModelRepositoryExtension | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Any:
    """The ASGI application: KServe's V1 + V2 endpoints, OIP errors, body limit.

    Args:
        dataplane: The data plane (an :class:`EdgeDataPlane`) with the registered model.
        repo_ext: KServe's model repository extension (metadata only here).
        max_body_bytes: Largest accepted request body.

    Returns:
        An ASGI application (the FastAPI app wrapped in :class:`BodyLimitMiddleware`).
    """
    app = FastAPI(
        title="kfedge model server",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=OrjsonResponse,
    )
    root = APIRouter()
    root.add_api_route("/", dataplane.live, methods=["GET"])
    root.add_api_route("/metrics", metrics_handler, methods=["GET"])
    app.include_router(root)
    register_v1_endpoints(app, dataplane, repo_ext)
    _register_v2_routes(app, dataplane, repo_ext)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(InvalidInput, _invalid_input_handler)
    app.add_exception_handler(ModelNotFound, _not_found_handler)
    app.add_exception_handler(ModelNotReady, _unavailable_handler)
    app.add_exception_handler(ServerNotReady, _unavailable_handler)
    app.add_exception_handler(ServerNotLive, _unavailable_handler)
    app.add_exception_handler(NotImplementedError, _not_implemented_handler)
    app.add_exception_handler(KfedgeError, _kfedge_error_handler)
    app.add_exception_handler(Exception, _server_error_handler)
    return BodyLimitMiddleware(app, max_body_bytes)


# ------------------------------------------------------------------------------------- gRPC
class _GRPCServer:
    """KServe's gRPC inference service on a chosen address (KServe's own binds ``[::]``)."""

    def __init__(
        self,
        host: str,
        port: int,
        dataplane: DataPlane,
        repo_ext: ModelRepositoryExtension,
        max_message_bytes: int,
        grace_period: float,
    ) -> None:
        self.address = f"{_grpc_host(host)}:{port}"
        self._dataplane = dataplane
        self._repo_ext = repo_ext
        self._max = max_message_bytes
        self._grace = grace_period
        self._server: Any = None

    async def start(self, max_workers: int) -> None:
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
        if self._server is not None:
            await self._server.stop(grace=self._grace)


def _grpc_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "[::]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# ----------------------------------------------------------------------------------- server
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
            grpc_server = _GRPCServer(
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
