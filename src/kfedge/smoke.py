"""Smoke test of a served model: one sample over V2 (and V1), compared with the evaluated answer.

The sample and the output the evaluation recorded for it come from the candidate's evaluation
(``outputs_sample``); a deployed model that answers differently by more than ``atol`` fails.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from kfedge.errors import InvalidInputError
from kfedge.isvc import PROTOCOLS, DeployError

__all__ = ["smoke_check", "smoke_test"]


def _http_json(
    url: str, body: dict[str, Any] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"content-type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": raw.decode(errors="replace")[:300]}
    except (urllib.error.URLError, OSError) as exc:
        raise DeployError(f"endpoint {url} is unreachable: {exc}") from exc


def smoke_test(
    url: str,
    model_name: str,
    sample: np.ndarray,
    expected: np.ndarray,
    atol: float = 1e-3,
    protocols: tuple[str, ...] = ("v2",),
    output_name: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Send one sample to the endpoint and compare the answer with the expected output.

    Args:
        url: Base URL of the server (``http://host:port``).
        model_name: Model name on the endpoint paths.
        sample: One example, with or without the batch dimension (e.g. ``[32, 32, 1]``).
        expected: The output the evaluation recorded for that example (e.g. 10 scores).
        atol: Largest accepted absolute difference per value.
        protocols: ``v2`` and / or ``v1``.
        output_name: Output to compare (default: the model's first output).
        timeout: Seconds per HTTP request.

    Returns:
        ``{"v2": {"max_abs_diff", "argmax", "expected_argmax", "latency_ms", "passed"}, ...,
        "max_abs_diff": ..., "passed": True}``.

    Raises:
        DeployError: The endpoint is unreachable, answered an error, or answered differently
            from the expected output by more than ``atol``.
    """
    base = url.rstrip("/")
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if not protocols or unknown:
        raise InvalidInputError(f"protocols must be a non-empty subset of {PROTOCOLS}")
    status, meta = _http_json(f"{base}/v2/models/{model_name}", timeout=timeout)
    if status != 200:
        raise DeployError(f"model metadata at {base}/v2/models/{model_name}: HTTP {status} {meta}")
    inputs = meta.get("inputs") or []
    if len(inputs) != 1:
        raise DeployError(f"the smoke test sends one input; the model has {len(inputs)}")
    spec = inputs[0]
    x = np.asarray(sample, dtype=np.float32)
    if x.ndim == len(spec["shape"]) - 1:
        x = x[None]
    if x.ndim != len(spec["shape"]) or x.shape[0] != 1:
        raise InvalidInputError(
            f"sample shape {list(np.shape(sample))} does not fit the model input {spec['shape']}"
        )
    want = np.asarray(expected, dtype=np.float64).reshape(-1)
    out_name = output_name or (meta.get("outputs") or [{}])[0].get("name")
    result: dict[str, Any] = {}
    for proto in protocols:
        start = time.perf_counter()
        if proto == "v2":
            body = {
                "id": "kfedge-smoke-test",
                "inputs": [
                    {
                        "name": spec["name"],
                        "shape": list(x.shape),
                        "datatype": spec["datatype"],
                        "data": x.reshape(-1).tolist(),
                    }
                ],
            }
            status, answer = _http_json(f"{base}/v2/models/{model_name}/infer", body, timeout)
            if status != 200:
                raise DeployError(f"V2 inference at {base}: HTTP {status} {answer}")
            outs = {o["name"]: o for o in answer.get("outputs", [])}
            if out_name not in outs:
                raise DeployError(f"V2 answer has outputs {list(outs)}, not {out_name!r}")
            got = np.asarray(outs[out_name]["data"], dtype=np.float64)
        else:
            status, answer = _http_json(
                f"{base}/v1/models/{model_name}:predict", {"instances": x.tolist()}, timeout
            )
            if status != 200:
                raise DeployError(f"V1 prediction at {base}: HTTP {status} {answer}")
            pred = answer.get("predictions", [None])[0]
            if isinstance(pred, dict):
                pred = pred.get(out_name)
            got = np.asarray(pred, dtype=np.float64)
        latency = (time.perf_counter() - start) * 1000
        got = got.reshape(-1)
        if got.size != want.size:
            raise DeployError(
                f"{proto.upper()} answer has {got.size} values, the evaluation recorded {want.size}"
            )
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        check = {
            "max_abs_diff": diff,
            "argmax": int(np.argmax(got)),
            "expected_argmax": int(np.argmax(want)),
            "latency_ms": round(latency, 3),
            "passed": bool(diff <= atol and math.isfinite(diff)),
        }
        result[proto] = check
        if not check["passed"]:
            raise DeployError(
                f"{proto.upper()} answer differs from the evaluated output: max abs diff "
                f"{diff:.3g} > atol {atol:g} (argmax {check['argmax']} vs "
                f"{check['expected_argmax']})"
            )
    result["max_abs_diff"] = max(result[p]["max_abs_diff"] for p in protocols)
    result["passed"] = True
    return result


def smoke_check(
    url: str,
    model_name: str,
    sample: np.ndarray,
    expected: np.ndarray,
    atol: float = 1e-3,
    protocols: tuple[str, ...] = ("v2",),
    output_name: str | None = None,
) -> dict[str, Any]:
    """:func:`smoke_test` as a result: a wrong or failed answer is ``passed: False``.

    Args:
        url: Base URL of the server.
        model_name: Model name on the endpoint paths.
        sample: One example.
        expected: The output the evaluation recorded for it.
        atol: Largest accepted absolute difference per value.
        protocols: ``v2`` and / or ``v1``.
        output_name: Output to compare (default: the model's first output).

    Returns:
        ``{"protocols": {...}, "max_abs_diff", "passed": True, "detail"}`` when every protocol
        answered within ``atol``, else ``{"passed": False, "detail": <the reason>}``.
    """
    try:
        checks = smoke_test(url, model_name, sample, expected, atol, protocols, output_name)
    except DeployError as exc:
        return {"passed": False, "detail": str(exc)}
    names = " and ".join(p.upper() for p in protocols)
    verb = "answers match" if len(protocols) > 1 else "answer matches"
    return {
        "protocols": {p: checks[p] for p in protocols},
        "max_abs_diff": checks["max_abs_diff"],
        "passed": True,
        "detail": f"{names} {verb} the evaluation at {url} (max abs diff "
        f"{checks['max_abs_diff']:.3g} <= {atol:g})",
    }
