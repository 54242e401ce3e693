"""Reliability section ``fuzz``: fuzzed requests, in-process and against the running server.

* **in-process** (hypothesis): generated V1 bodies, V2 JSON bodies and binary-extension bodies
  (well-formed structures with wrong names, shapes, datatypes and data; arbitrary JSON; raw
  bytes; lone surrogates) go through the server's own decoding and checks
  (``EdgeDataPlane.decode`` then ``EdgeModel.check``); a request that passes the checks is also
  run on the model. The only accepted failure is KServe's ``InvalidInput`` (HTTP 400); anything
  else is a crash and is counted with its first examples.
* **schemathesis**: requests generated from the Open Inference Protocol's OpenAPI document
  (``rest_predict_v2.yaml``, where the workspace has it) against the server over HTTP; every
  answer with a 5xx status is counted. Skipped, with the reason, when the document is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, child_env, log

#: The OIP document schemathesis reads (outside the repository: only the workspace has it).
OIP_SPEC = ROOT.parent / "shared" / "reference" / "kserve" / "rest_predict_v2.yaml"
DATATYPES = ["FP32", "FP16", "FP64", "INT8", "INT32", "INT64", "UINT8", "BOOL", "BYTES", "fp32"]


def _strategies(input_name: str, shape: list[int]) -> dict[str, Any]:
    from hypothesis import strategies as st

    text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
    number = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
    scalar = st.none() | st.booleans() | number | text
    anything = st.recursive(
        scalar,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4),
        max_leaves=8,
    )
    dims = st.lists(st.integers(-2, 40), max_size=5) | st.just(shape) | st.just([2, *shape[1:]])
    data = st.lists(number, max_size=64) | st.lists(text, max_size=4) | anything
    name = st.sampled_from([input_name, "", "x"]) | text
    v2_input = st.fixed_dictionaries(
        {"name": name, "shape": dims | anything, "datatype": st.sampled_from(DATATYPES) | text},
        optional={"data": data, "parameters": st.dictionaries(text, scalar, max_size=3)},
    )
    v2 = st.fixed_dictionaries(
        {"inputs": st.lists(v2_input, max_size=3) | anything},
        optional={
            "id": text,
            "outputs": st.lists(st.fixed_dictionaries({"name": text}), max_size=2) | anything,
            "parameters": st.dictionaries(text, scalar, max_size=3) | anything,
        },
    )
    rows = st.lists(st.lists(number, max_size=40), max_size=4)
    v1 = st.fixed_dictionaries({"instances": rows | anything}) | st.dictionaries(text, anything)
    binary_head = st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": name,
                        "shape": dims,
                        "datatype": st.sampled_from(DATATYPES),
                        "parameters": st.fixed_dictionaries(
                            {"binary_data_size": st.integers(-5, 5000) | anything}
                        ),
                    }
                ),
                max_size=2,
            )
        },
        optional={"parameters": st.dictionaries(text, scalar, max_size=2)},
    )

    def encode(obj: Any) -> bytes:
        return json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")

    json_body = st.one_of(st.binary(max_size=200), st.just(b'{"inputs": [')).map(bytes)
    # Near-valid requests: the right name, shape and size (batch 1 to 9 against a maximum of
    # 8), seeded random data, and at most one value replaced by something wrong.
    odd = st.sampled_from([None, "nan", "inf", "-inf", "x", True, 2**70, [1.0], {}, -1e39])
    near = st.tuples(st.integers(1, 9), st.integers(0, 2**32 - 1), st.none() | odd, st.integers())

    def values(case: tuple[int, int, Any, int]) -> tuple[list[int], list[Any]]:
        n, seed, bad, where = case
        full = [n, *shape[1:]]
        data = np.random.default_rng(seed).random(int(np.prod(full))).astype(np.float32).tolist()
        if bad is not None:
            data[where % len(data)] = float(bad) if bad in ("nan", "inf", "-inf") else bad
        return full, data

    def near_v2(case: tuple[int, int, Any, int]) -> bytes:
        full, data = values(case)
        body = {"inputs": [{"name": input_name, "shape": full, "datatype": "FP32", "data": data}]}
        return encode(body)

    def near_v1(case: tuple[int, int, Any, int]) -> bytes:
        full, data = values(case)
        return encode({"instances": np.asarray(data, dtype=object).reshape(full).tolist()})

    def near_binary(case: tuple[int, int, Any, int]) -> tuple[bytes, bytes, int]:
        n, seed, bad, where = case
        full = [n, *shape[1:]]
        raw = np.random.default_rng(seed).random(int(np.prod(full))).astype("<f4").tobytes()
        size = len(raw) + (0 if bad is None else (where % 9) - 4)
        head = {"inputs": [{"name": input_name, "shape": full, "datatype": "FP32",
                            "parameters": {"binary_data_size": size}}]}  # fmt: skip
        return encode(head), raw, 0

    return {
        "v1": st.one_of(v1.map(encode), json_body, near.map(near_v1)),
        "v2": st.one_of(v2.map(encode), json_body, near.map(near_v2)),
        "binary": st.one_of(
            st.tuples(binary_head.map(encode), st.binary(max_size=8192), st.integers(-3, 3)),
            near.map(near_binary),
        ),
    }


class _Tally:
    """One fuzz target: decode + check (+ run) each generated body and count the outcomes."""

    def __init__(self, plane: Any, model: Any, protocol: str) -> None:
        from kserve.errors import InvalidInput

        self.plane, self.model, self.protocol = plane, model, protocol
        self.refusal = InvalidInput
        self.counts: Counter[str] = Counter()
        self.crashes: list[str] = []

    def _crash(self, exc: BaseException, where: str) -> None:
        self.counts["crashes"] += 1
        if len(self.crashes) < 5:
            self.crashes.append(f"{where}{type(exc).__name__}: {exc}"[:300])

    def one(self, body: bytes, headers: dict[str, str], protocol: str) -> None:
        with warnings.catch_warnings():
            # numpy's overflow / invalid-value warnings are silent data corruption: crashes
            warnings.simplefilter("error", RuntimeWarning)
            self._one(body, headers, protocol)

    def _one(self, body: bytes, headers: dict[str, str], protocol: str) -> None:
        self.counts["examples"] += 1
        try:
            payload, _ = self.plane.decode(body, headers, protocol, "m")
            batch = self.model.check(payload)
        except self.refusal:
            self.counts["refused"] += 1
            return
        except Exception as exc:  # noqa: BLE001 - what the fuzzer looks for
            self._crash(exc, "")
            return
        try:
            self.model.runner.run(batch.feeds)
            self.counts["accepted"] += 1
        except Exception as exc:  # noqa: BLE001
            self._crash(exc, "run: ")

    def json(self, body: bytes) -> None:
        self.one(body, {"content-type": "application/json"}, self.protocol)

    def binary(self, case: tuple[bytes, bytes, int]) -> None:
        head, raw, skew = case
        hdr = {
            "inference-header-content-length": str(len(head) + skew),
            "content-type": "application/octet-stream",
        }
        self.one(head + raw, hdr, "v2")


def fuzz_in_process(model: Path, examples: int) -> dict[str, Any]:
    """``examples`` fuzzed requests per target (v1, v2, binary) through decode + check (+ run).

    Returns:
        Per target: examples, refused (400), accepted (and run), crashes with first examples.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from kserve.model_repository import ModelRepository

    from kfedge.serving.dataplane import EdgeDataPlane
    from kfedge.serving.model import EdgeModel

    model_obj = EdgeModel("m", model, max_batch=8, infer_workers=1)
    model_obj.load()
    plane = EdgeDataPlane(model_registry=ModelRepository())
    spec = model_obj.runner.inputs[0]
    shape = [1 if d is None else int(d) for d in spec.shape]
    strategies = _strategies(spec.name, shape)
    out: dict[str, Any] = {}
    try:
        for target, strategy in strategies.items():
            tally = _Tally(plane, model_obj, target)
            cfg = settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            run = cfg(given(strategy)(tally.binary if target == "binary" else tally.json))
            log(f"fuzz: {examples} {target} requests in-process")
            t0 = time.perf_counter()
            run()
            out[target] = {
                **{k: tally.counts[k] for k in ("examples", "refused", "accepted", "crashes")},
                "crash_examples": tally.crashes,
                "seconds": round(time.perf_counter() - t0, 1),
            }
    finally:
        model_obj.stop()
    return out


def fuzz_schemathesis(model: Path, work: Path, examples: int) -> dict[str, Any]:
    """Schemathesis against the served OIP routes; counts requests and 5xx answers."""
    from benchmarks.soak import served

    if not OIP_SPEC.is_file():
        return {"skipped": f"the OIP OpenAPI document ({OIP_SPEC.name}) is not in this workspace"}
    har = work / "schemathesis.har"
    with served(model, "m", work / "schemathesis-server.log") as proc:
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(OIP_SPEC),
            "--url",
            f"http://127.0.0.1:{proc.port}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(examples),
            "--seed",
            "1",
            "--continue-on-failure",
            "--report",
            "har",
            "--report-har-path",
            str(har),
        ]
        log(f"fuzz: schemathesis, up to {examples} examples per operation")
        res = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=work,  # schemathesis keeps a cache (.schemathesis/) in its working directory
            timeout=3600,
            check=False,
        )
        alive = proc.poll() is None
    if not har.is_file():
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        return {"error": f"schemathesis wrote no report (exit {res.returncode}): {tail}"}
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(str(e["response"]["status"]) for e in entries)
    return {
        "spec": OIP_SPEC.name,
        "requests": len(entries),
        "status_counts": dict(sorted(statuses.items())),
        "server_errors": sum(n for s, n in statuses.items() if s.startswith("5")),
        "server_alive": alive,
        "exit_status": res.returncode,
    }
