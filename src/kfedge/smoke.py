"""Smoke test of a served model: one sample over V2 (and V1), compared with the evaluated answer.

The sample and the output the evaluation recorded for it come from the candidate's evaluation
(``outputs_sample``); a deployed model that answers differently by more than ``atol`` fails.
An endpoint that does not answer yet (refused connection, 502 / 503 / 504: a Service whose
routes are still being programmed right after the InferenceService turned Ready) is retried with
backoff (:mod:`kfedge.retry`); a wrong answer or any other error fails at once.
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
from kfedge.isvc import PROTOCOLS, DeployError, TransientDeployError
from kfedge.retry import retry

__all__ = ["smoke_test"]


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
        raise TransientDeployError(f"endpoint {url} is unreachable: {exc}") from None


#: Answers of a proxy or Service with no ready backend yet.
_NOT_YET = (502, 503, 504)


def _failed(what: str, status: int, answer: Any) -> DeployError:
    kind = TransientDeployError if status in _NOT_YET else DeployError
    return kind(f"{what}: HTTP {status} {answer}")


def _answer(
    base: str, model_name: str, proto: str, x: np.ndarray, spec: dict, output: str, timeout: float
) -> np.ndarray:
    """Send ``x`` over ``proto`` and return the ``output`` values of the answer (flat)."""
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
            raise _failed(f"V2 inference at {base}", status, answer)
        outs = {o["name"]: o for o in answer.get("outputs", [])}
        if output not in outs:
            raise DeployError(f"V2 answer has outputs {list(outs)}, not {output!r}")
        return np.asarray(outs[output]["data"], dtype=np.float64).reshape(-1)
    body = {"instances": x.tolist()}
    status, answer = _http_json(f"{base}/v1/models/{model_name}:predict", body, timeout)
    if status != 200:
        raise _failed(f"V1 prediction at {base}", status, answer)
    pred = answer.get("predictions", [None])[0]
    if isinstance(pred, dict):
        pred = pred.get(output)
    return np.asarray(pred, dtype=np.float64).reshape(-1)


def _check(base: str, model_name: str, sample: np.ndarray, expected: np.ndarray, **kw: Any) -> dict:
    """What :func:`smoke_test` returns, raising DeployError on any failure."""
    atol, protocols, timeout = kw["atol"], kw["protocols"], kw["timeout"]
    status, meta = _http_json(f"{base}/v2/models/{model_name}", timeout=timeout)
    if status != 200:
        raise _failed(f"model metadata at {base}/v2/models/{model_name}", status, meta)
    served = list(meta.get("versions") or [])
    want_version = kw.get("model_version")
    if want_version and want_version not in served:
        raise DeployError(
            f"{base} serves another model than this candidate: its /v2/models/{model_name} "
            f"versions are {served or 'not given'}, the candidate's content hash is "
            f"{want_version} (an old pod still answers, or another model is mounted)"
        )
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
    output = kw["output_name"] or (meta.get("outputs") or [{}])[0].get("name")
    checks: dict[str, Any] = {}
    for proto in protocols:
        start = time.perf_counter()
        got = _answer(base, model_name, proto, x, spec, output, timeout)
        latency = (time.perf_counter() - start) * 1000
        if got.size != want.size:
            raise DeployError(
                f"{proto.upper()} answer has {got.size} values, the evaluation recorded {want.size}"
            )
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        checks[proto] = check = {
            "max_abs_diff": diff,
            "argmax": int(np.argmax(got)),
            "expected_argmax": int(np.argmax(want)),
            "latency_ms": round(latency, 3),
            "passed": bool(diff <= atol and math.isfinite(diff)),
        }
        if not check["passed"]:
            raise DeployError(
                f"{proto.upper()} answer differs from the evaluated output: max abs diff "
                f"{diff:.3g} > atol {atol:g} (argmax {check['argmax']} vs "
                f"{check['expected_argmax']})"
            )
    worst = max(c["max_abs_diff"] for c in checks.values())
    names = " and ".join(p.upper() for p in protocols)
    verb = "answers match" if len(protocols) > 1 else "answer matches"
    return {
        "protocols": checks,
        "max_abs_diff": worst,
        "model_version": served[0] if served else None,
        "platform": meta.get("platform") or None,
        "passed": True,
        "detail": f"{names} {verb} the evaluation at {base} (max abs diff {worst:.3g} <= {atol:g})",
    }


def smoke_test(
    url: str,
    model_name: str,
    sample: np.ndarray,
    expected: np.ndarray,
    atol: float = 1e-3,
    protocols: tuple[str, ...] = ("v2",),
    output_name: str | None = None,
    timeout: float = 30,
    check: bool = True,
    model_version: str | None = None,
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
        check: Raise on a failed test; False returns ``{"passed": False, "detail": <why>}``.
        model_version: The candidate's content hash (:func:`kfedge.candidate.model_digest`):
            the endpoint must report it in its model metadata's ``versions``, which proves it
            serves this candidate and not an older one (None: not checked).

    Returns:
        ``{"protocols": {"v2": {"max_abs_diff", "argmax", "expected_argmax", "latency_ms",
        "passed"}, ...}, "max_abs_diff", "passed": True, "detail"}``.

    Raises:
        DeployError: (with ``check``) The endpoint is unreachable, answered an error, or
            answered differently from the expected output by more than ``atol``.
        InvalidInputError: Unknown protocols, or a sample that does not fit the model input.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if not protocols or unknown:
        raise InvalidInputError(f"protocols must be a non-empty subset of {PROTOCOLS}")
    opts = {
        "atol": atol,
        "protocols": protocols,
        "output_name": output_name,
        "timeout": timeout,
        "model_version": model_version,
    }
    base = url.rstrip("/")
    try:
        return retry(
            lambda: _check(base, model_name, sample, expected, **opts),
            what=f"smoke test of {base}",
        )
    except DeployError as exc:
        if check:
            raise
        return {"passed": False, "detail": str(exc)}
