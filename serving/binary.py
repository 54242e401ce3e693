"""The Open Inference Protocol's binary tensor data extension, decoded and encoded with checks.

KServe 0.21 decodes a binary-extension request without checking the declared sizes against the
shapes and datatypes, so a malformed body is a 500 there. Here every size is checked and a
malformed request is a 400 that says what was expected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pydantic
from fastapi import Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from kserve.protocol.rest.v2_datamodels import InferenceRequest, RequestInput

from kfedge.serving.errors import describe_validation_errors
from kfedge.serving.model import NP_DTYPES

#: A shape dimension: an integer, never a JSON ``true`` / ``false`` or a float (pydantic's lax
#: mode would turn ``[true, 16, 16, 3]`` into ``[1, 16, 16, 3]``).
Dim = pydantic.StrictInt


class _StrictRequestInput(RequestInput):
    shape: list[Dim]  # type: ignore[assignment]


class StrictInferenceRequest(InferenceRequest):
    """KServe's V2 inference request with integer-only shape dimensions."""

    inputs: list[_StrictRequestInput]  # type: ignore[assignment]


class _BinaryInput(pydantic.BaseModel):
    name: str
    shape: list[Dim]
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


def _validate(model: type[pydantic.BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise InvalidInput(describe_validation_errors(list(exc.errors()))) from None


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
        req = _validate(StrictInferenceRequest, body)
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
    head: InferenceRequestHeader = _validate(InferenceRequestHeader, body[:json_len])
    offset = json_len
    inputs: list[InferInput] = []
    for inp in head.inputs:
        params = dict(inp.parameters or {})
        if inp.data is not None:
            inputs.append(InferInput(inp.name, inp.shape, inp.datatype, inp.data, params))
            continue
        size = _binary_size(inp, params.pop("binary_data_size", None))
        if offset + size > len(body):
            raise InvalidInput(
                f"input '{inp.name}': {size} bytes of binary data declared at offset {offset}, "
                f"but the body ends at {len(body)}"
            )
        dtype = NP_DTYPES[inp.datatype.upper()]
        arr = np.frombuffer(body, dtype=dtype, count=math.prod(inp.shape), offset=offset)
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


def _binary_size(inp: _BinaryInput, size: Any) -> int:
    """The checked ``binary_data_size`` of an input without ``data``."""
    if size is None:
        raise InvalidInput(f"input '{inp.name}' has neither 'data' nor parameters.binary_data_size")
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
    return size


def binary_response(res: Response) -> Response:
    """Re-encode the JSON header of a binary-extension answer without ``null`` fields.

    Args:
        res: KServe's answer to a V2 request that asked for binary outputs.

    Returns:
        The same answer with a header that conforms to the OIP schema (unset optional fields
        left out instead of ``null``); ``res`` itself when it has no binary part.
    """
    header_len = res.headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    if header_len is None:
        return res
    body = bytes(res.body)
    n = int(header_len)
    head = {k: v for k, v in orjson.loads(body[:n]).items() if v is not None}
    new_head = orjson.dumps(head)
    return Response(
        content=new_head + body[n:],
        media_type="application/octet-stream",
        headers={INFERENCE_CONTENT_LENGTH_HEADER: str(len(new_head))},
    )
