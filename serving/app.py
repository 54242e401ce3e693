"""The model server's ASGI application: KServe's V1 + V2 endpoints, OIP errors, body limit.

KServe's own V2 routes answer unset optional fields as ``null``, which the OIP schema types as
string / object; the routes here leave them out. Versioned model paths
(``/v2/models/{name}/versions/{v}/...``) answer 501, as in KServe. The model repository
load/unload endpoints are not exposed: the server serves the one model it loaded at start.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from kserve.protocol.dataplane import DataPlane
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

from kfedge._version import __version__
from kfedge.serving.binary import binary_response
from kfedge.serving.errors import OrjsonResponse, add_error_handlers
from kfedge.serving.limits import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware


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
        return binary_response(res)

    for suffix in ("", "/versions/{model_version}"):
        router.add_api_route(
            "/models/{model_name}" + suffix + "/infer",
            infer,
            methods=["POST"],
            response_model=None,
        )
    app.include_router(router)


def build_app(
    dataplane: DataPlane,
    repo_ext: ModelRepositoryExtension | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Any:
    """The ASGI application: KServe's V1 + V2 endpoints, OIP errors, body limit.

    Args:
        dataplane: The data plane (an :class:`~kfedge.serving.dataplane.EdgeDataPlane`) with the
            registered model.
        repo_ext: KServe's model repository extension (metadata only here).
        max_body_bytes: Largest accepted request body.

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
    register_v1_endpoints(app, dataplane, repo_ext)
    _register_v2_routes(app, dataplane, repo_ext)
    add_error_handlers(app)
    return BodyLimitMiddleware(app, max_body_bytes)
