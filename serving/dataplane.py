"""KServe's data plane with strict decoding and a readiness that means "models loaded"."""

from __future__ import annotations

from typing import Any

import orjson
from cloudevents.exceptions import GenericException
from cloudevents.sdk.converters.util import has_binary_headers
from kserve.errors import InvalidInput
from kserve.protocol.dataplane import JSON_HEADERS, DataPlane
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from kfedge.serving.binary import decode_binary_request


def _media_type(headers: Any) -> str:
    value = headers.get("content-type", "application/json") or "application/json"
    return value.split(";")[0].strip().lower()


#: Protocol extensions this server implements (the model repository extension is not served:
#: one model per server, loaded at start).
EXTENSIONS = ["binary_tensor_data"]


class EdgeDataPlane(DataPlane):
    """KServe's data plane with strict decoding and a readiness that means "models loaded"."""

    def metadata(self) -> dict[str, Any]:
        """Server metadata, listing only the extensions whose endpoints exist."""
        return {**super().metadata(), "extensions": list(EXTENSIONS)}

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        """KServe's model metadata, with the served model's content hash and its runtime.

        ``versions`` is ``[sha256:<hex>]`` (:func:`kfedge.candidate.model_digest` of what was
        loaded), which the deploy smoke test compares with the candidate's; ``platform`` the
        runtime and where it runs (e.g. ``kfedge-onnx:CPUExecutionProvider``, a CPU fallback
        said).
        """
        meta = dict(await super().model_metadata(model_name))
        model = self.get_model_from_registry(model_name)
        digest = getattr(model, "digest", "")
        if digest:
            meta["versions"] = [digest]
        runner = getattr(model, "runner", None)
        if runner is not None:
            info = runner.describe()
            where = info.get("providers") or info.get("device") or info.get("delegate") or ""
            if isinstance(where, list):
                where = where[0] if where else ""
            fallback = " (CPU fallback)" if info.get("fallback_to_cpu") else ""
            meta["platform"] = (
                f"kfedge-{info.get('format', '')}" + (f":{where}" if where else "") + fallback
            )
        return meta

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
        """KServe's decode; what a malformed request raises there is a 400, anything else a 500.

        Only the exceptions that report bad input are answered 400: kserve's ``InvalidInput``,
        a CloudEvent the ``cloudevents`` library refuses, a body that is not JSON or not UTF-8.
        Any other exception (a ``KeyError``, ``TypeError``, ``AttributeError``...) is a fault
        of the decoder, not of the request, and stays a 500, so the fuzz figures count it.
        """
        if has_binary_headers(headers or {}) and not body:
            raise InvalidInput("a binary CloudEvent request needs a body (its data)")
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
        except (GenericException, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"malformed request: {type(exc).__name__}: {exc}") from exc

    def decode_inference_request(
        self, body: bytes | InferenceRequest, headers: dict[str, str], model_name: str
    ) -> InferRequest:
        """V2 decode; raw bodies go through :func:`~kfedge.serving.binary.decode_binary_request`."""
        if isinstance(body, bytes):
            return decode_binary_request(body, headers, model_name)
        return InferRequest.from_inference_request(body, model_name)
