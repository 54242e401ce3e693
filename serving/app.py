"""The model server's ASGI application: KServe's V1 + V2 endpoints, OIP errors, body limits.

KServe's own V2 routes answer unset optional fields as ``null``, which the OIP schema types as
string / object; the routes here leave them out. Versioned model paths
(``/v2/models/{name}/versions/{v}/...``) answer 404 (KServe: 501, a server error): the served
model has no versions, so no version of it exists. The model repository
load/unload endpoints are not exposed (nor advertised): the server serves the one model it
loaded at start.

The inference routes read the raw body (FastAPI would parse and validate it on the event loop
before the handler runs) and have :class:`~kfedge.serving.decoding.BodyDecoder` decode and
check it off the event loop when it is large, so that health and readiness keep answering while
large bodies are parsed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from kserve.errors import ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import metrics_handler
from kserve.protocol.rest.v1_endpoints import V1Endpoints
from kserve.protocol.rest.v2_datamodels import (
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
from kfedge.serving.binary import binary_response
from kfedge.serving.decoding import BodyDecoder
from kfedge.serving.errors import OrjsonResponse, add_error_handlers
from kfedge.serving.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INFLIGHT,
    BodyLimitMiddleware,
)


async def _checked_request(
    dataplane: DataPlane, decoder: BodyDecoder, request: Request, model_name: str, protocol: str
) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """Read, decode and check an inference request (off the event loop when large).

    Returns:
        The checked payload (a :class:`~kfedge.serving.model.Batch`), the request's CloudEvent
        attributes (V1), and its headers.
    """
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    model = await dataplane.get_model(model_name)
    body = await request.body()
    headers = dict(request.headers)
    payload, attributes = await decoder.decode(
        dataplane, model, body, headers, protocol, model_name
    )
    return payload, attributes, headers


def _register_v1_routes(
    app: FastAPI,
    dataplane: DataPlane,
    repo_ext: ModelRepositoryExtension | None,
    decoder: BodyDecoder,
) -> None:
    """KServe's V1 routes, with the predict body decoded and checked off the event loop."""
    v1 = V1Endpoints(dataplane, repo_ext)
    router = APIRouter(prefix="/v1", tags=["V1"])
    router.add_api_route("/models", v1.models, methods=["GET"])
    router.add_api_route("/models/{model_name}", v1.model_ready, methods=["GET"])

    async def predict(model_name: str, request: Request) -> Response:
        payload, attributes, headers = await _checked_request(
            dataplane, decoder, request, model_name, "v1"
        )
        response, response_headers = await dataplane.infer(model_name, payload, headers)
        response, res_headers = dataplane.encode(model_name, response, headers, attributes)
        response_headers.update(res_headers)
        response_headers.pop("content-length", None)
        if isinstance(response, (bytes, str)):
            return Response(content=response, headers=response_headers)
        return OrjsonResponse(content=response, headers=response_headers)

    router.add_api_route(
        "/models/{model_name}:predict", predict, methods=["POST"], response_model=None
    )
    router.add_api_route(
        "/models/{model_name}:explain", v1.explain, methods=["POST"], response_model=None
    )
    app.include_router(router)


def _register_v2_routes(
    app: FastAPI,
    dataplane: DataPlane,
    repo_ext: ModelRepositoryExtension | None,
    decoder: BodyDecoder,
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
    router.add_api_route(
        "/models/{model_name}", v2.model_metadata, response_model=ModelMetadataResponse, **opts
    )
    router.add_api_route(
        "/models/{model_name}/ready", v2.model_ready, response_model=ModelReadyResponse, **opts
    )

    async def versioned(model_name: str, model_version: str) -> Response:
        raise StarletteHTTPException(
            404,
            f"model '{model_name}' has no version '{model_version}': this server serves one "
            f"unversioned model; use /v2/models/{model_name}/...",
        )

    for suffix in ("", "/ready", "/infer"):
        router.add_api_route(
            "/models/{model_name}/versions/{model_version}" + suffix,
            versioned,
            methods=["POST"] if suffix == "/infer" else ["GET"],
            response_model=None,
        )

    async def infer(raw_request: Request, model_name: str) -> Response:
        payload, _, headers = await _checked_request(
            dataplane, decoder, raw_request, model_name, "v2"
        )
        response, response_headers = await dataplane.infer(model_name, payload, headers)
        response, res_headers = dataplane.encode(model_name, response, headers, {})
        response_headers.update(res_headers)
        response_headers.pop("content-length", None)
        response_headers.pop("content-type", None)
        if isinstance(response, bytes):
            return binary_response(Response(content=response, headers=response_headers))
        answer = InferenceResponse.model_validate(response).model_dump(exclude_none=True)
        return OrjsonResponse(answer, headers=response_headers)

    router.add_api_route("/models/{model_name}/infer", infer, methods=["POST"], response_model=None)
    app.include_router(router)


def build_app(
    dataplane: DataPlane,
    repo_ext: ModelRepositoryExtension | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    decoder: BodyDecoder | None = None,
) -> Any:
    """The ASGI application: KServe's V1 + V2 endpoints, OIP errors, body limits.

    Args:
        dataplane: The data plane (an :class:`~kfedge.serving.dataplane.EdgeDataPlane`) with the
            registered model.
        repo_ext: KServe's model repository extension (metadata only here).
        max_body_bytes: Largest accepted request body (decompressed).
        body_timeout: Seconds a request body may take to arrive.
        max_inflight: Requests with a body read or answered at once.
        decoder: Decodes large bodies off the event loop (default: in worker threads).

    Returns:
        An ASGI application (the FastAPI app wrapped in
        :class:`~kfedge.serving.limits.BodyLimitMiddleware`).
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
    decoder = decoder or BodyDecoder()
    _register_v1_routes(app, dataplane, repo_ext, decoder)
    _register_v2_routes(app, dataplane, repo_ext, decoder)
    add_error_handlers(app)
    return BodyLimitMiddleware(app, max_body_bytes, body_timeout, max_inflight)
