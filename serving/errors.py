"""How the model server answers errors: the one kfedge error -> HTTP status table, OIP error bodies.

Every error answer is ``{"error": "..."}`` (the Open Inference Protocol's form), also where
FastAPI would answer 422 ``{"detail": [...]}``: request schema errors are 400s. Only a real
server fault is a 500.

:data:`HTTP_STATUS` is the only place that maps kfedge's error classes (``kfedge.errors``, which
know nothing of HTTP) to HTTP statuses. :func:`to_kserve_error` uses it to turn an error raised by
a runner into KServe's own exception, so that REST and gRPC (KServe's interceptor) give the same
answer. See ``docs/ARCHITECTURE.md#serving``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotLive, ServerNotReady
from starlette.exceptions import HTTPException as StarletteHTTPException

from kfedge.errors import (
    DependencyError,
    InvalidInputError,
    KfedgeError,
    NotFoundError,
    NotReadyError,
    StorageError,
)
from kfedge.serving.limits import BodyRefused

log = logging.getLogger("kfedge.serving")

#: kfedge error class -> HTTP status of the model server's answer. An error takes the status of
#: the first of its classes (most specific first) listed here; a kfedge error of no listed class
#: is a server fault (500).
HTTP_STATUS: dict[type[KfedgeError], int] = {
    InvalidInputError: 400,  # and its ConfigError, ModelFormatError, DataError
    NotFoundError: 404,
    NotReadyError: 503,
    StorageError: 503,
    DependencyError: 503,
}
_SERVER_FAULT = 500
_MAX_ERRORS_SHOWN = 5


def http_status(exc: BaseException) -> int:
    """The HTTP status the model server answers a kfedge error with.

    Args:
        exc: The error.

    Returns:
        The status of the most specific class of ``exc`` in :data:`HTTP_STATUS`, else 500.
    """
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return _SERVER_FAULT


def to_kserve_error(exc: KfedgeError, model_name: str) -> Exception:
    """KServe's exception for a kfedge error, so REST and gRPC answer it alike.

    Args:
        exc: An error raised while serving (e.g. by a runner).
        model_name: The model being served.

    Returns:
        ``InvalidInput`` (HTTP 400 / gRPC INVALID_ARGUMENT) for a client error,
        ``ModelNotReady`` (503 / UNAVAILABLE) for :class:`~kfedge.errors.NotReadyError`, else
        ``exc`` itself (answered with :func:`http_status` by the app).
    """
    if http_status(exc) == 400:
        return InvalidInput(str(exc))
    if isinstance(exc, NotReadyError):
        return ModelNotReady(model_name, str(exc))
    return exc


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone UTF-16 surrogates) as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _sanitized(content: Any) -> Any:
    if isinstance(content, str):
        return printable(content)
    if isinstance(content, dict):
        return {_sanitized(k): _sanitized(v) for k, v in content.items()}
    if isinstance(content, (list, tuple)):
        return [_sanitized(v) for v in content]
    return content


class OrjsonResponse(JSONResponse):
    """JSON via orjson (numpy-aware; NaN becomes null instead of a 500).

    A string UTF-8 cannot encode (a lone surrogate a client sent, echoed in an id or an error
    message) is written with backslash escapes instead of failing the answer.
    """

    def render(self, content: Any) -> bytes:  # noqa: D102
        try:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError:
            return orjson.dumps(_sanitized(content), option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(status: int, message: str) -> OrjsonResponse:
    """An Open Inference Protocol error answer: ``status`` with ``{"error": message}``."""
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
    return error_response(400, msg)


async def _body_refused_handler(_: Request, exc: Exception) -> OrjsonResponse:
    # The body-limit middleware answers (and logs) these itself; this answer is dropped.
    return error_response(400, str(exc))


async def _http_exception_handler(_: Request, exc: StarletteHTTPException) -> Response:
    return OrjsonResponse(
        status_code=exc.status_code,
        content={"error": str(exc.detail)},
        headers=getattr(exc, "headers", None),
    )


async def _invalid_input_handler(_: Request, exc: Exception) -> OrjsonResponse:
    log.info("400: %s", exc)
    return error_response(400, str(exc))


async def _not_found_handler(_: Request, exc: Exception) -> OrjsonResponse:
    return error_response(404, str(exc))


async def _unavailable_handler(_: Request, exc: Exception) -> OrjsonResponse:
    log.warning("503: %s", exc)
    return error_response(503, str(exc))


async def _not_implemented_handler(_: Request, exc: Exception) -> OrjsonResponse:
    return error_response(501, str(exc) or "not implemented")


async def _kfedge_error_handler(_: Request, exc: KfedgeError) -> OrjsonResponse:
    status = http_status(exc)
    (log.info if status < 500 else log.error)("%d: %s", status, exc)
    return error_response(status, str(exc))


async def _server_error_handler(_: Request, exc: Exception) -> OrjsonResponse:
    log.error("internal error", exc_info=exc)
    return error_response(500, f"internal server error: {type(exc).__name__}: {exc}")


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as ``{"error": ...}`` with its status.

    Schema errors -> 400, KServe's ``InvalidInput`` -> 400, ``ModelNotFound`` -> 404, model or
    server not ready / live -> 503, ``NotImplementedError`` -> 501, kfedge errors -> their
    :func:`http_status`, anything else -> 500.

    Args:
        app: The FastAPI application.
    """
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(BodyRefused, _body_refused_handler)
    app.add_exception_handler(InvalidInput, _invalid_input_handler)
    app.add_exception_handler(ModelNotFound, _not_found_handler)
    app.add_exception_handler(ModelNotReady, _unavailable_handler)
    app.add_exception_handler(ServerNotReady, _unavailable_handler)
    app.add_exception_handler(ServerNotLive, _unavailable_handler)
    app.add_exception_handler(NotImplementedError, _not_implemented_handler)
    app.add_exception_handler(KfedgeError, _kfedge_error_handler)
    app.add_exception_handler(Exception, _server_error_handler)
