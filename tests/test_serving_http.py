"""kfedge's model server over real HTTP (and gRPC), on 127.0.0.1, with models made by the library.

Each server is ``python -m kfedge.serving`` in a subprocess on a free loopback port. Models: FP32
TFLite (conftest), full-integer INT8 TFLite (int8 in/out), and ONNX dynamic INT8.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import servingkit
import yaml

pytest.importorskip("kserve")

MAX_BODY = 1 << 20  # 1 MiB in these tests (default 16 MiB)
MAX_BATCH = 16


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def int8_tflite(baseline_model: Path, sample_dataset: Path, tmp_path_factory) -> Path:  # noqa: ANN001
    """Full-integer INT8 TFLite (int8 input and output), calibrated on the calibration split."""
    from kfedge.convert import convert_tflite
    from kfedge.data import load_split

    xc, _ = load_split(sample_dataset, "calibration", limit=64)

    def configure(conv: Any) -> None:
        from kfedge import compat

        tf = compat.tf()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in xc)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8

    out = tmp_path_factory.mktemp("int8") / "model.tflite"
    return convert_tflite(baseline_model, out, configure=configure)


@pytest.fixture(scope="session")
def int8_onnx(fp32_onnx: Path, tmp_path_factory) -> Path:  # noqa: ANN001
    """ONNX Runtime dynamic INT8 quantization of the FP32 ONNX baseline."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = tmp_path_factory.mktemp("int8onnx") / "model.onnx"
    quantize_dynamic(str(fp32_onnx), str(out), weight_type=QuantType.QInt8)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(servingkit.ServerProcess):
    """A kfedge model server subprocess on 127.0.0.1 with this module's body and batch limits."""

    def __init__(self, model: Path, name: str, tmp: Path, grpc: bool = False) -> None:
        limits = ["--max_body_bytes", str(MAX_BODY), "--max_batch", str(MAX_BATCH)]
        super().__init__(model, name, tmp, args=limits, grpc=grpc)


def _request(url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(
        url, data=data, headers=headers, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(url: str) -> tuple[int, Any]:
    status, _, body = _request(url, None, {})
    return status, json.loads(body)


def post(url: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, raw = _request(url, data, {"content-type": content_type})
    return status, json.loads(raw)


MODELS = ["fp32_tflite", "int8_tflite", "int8_onnx"]


@pytest.fixture(scope="module", params=MODELS)
def served(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """(server, runner) for each model; the runner is the library's, in this process."""
    from kfedge.runners import load_runner

    path = request.getfixturevalue(request.param)
    server = Server(path, request.param.replace("_", "-"), tmp_path_factory.mktemp("srv"))
    runner = load_runner(path)
    yield server, runner
    server.stop()


@pytest.fixture(scope="module")
def eval_batch(sample_dataset: Path) -> np.ndarray:
    from kfedge.data import load_split

    x, _ = load_split(sample_dataset, "eval", limit=5)
    return x


def v2_body(runner: Any, x: np.ndarray, **extra: Any) -> dict[str, Any]:
    spec = runner.inputs[0]
    return {
        "inputs": [
            {
                "name": spec.name,
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.ravel().tolist(),
            }
        ],
        **extra,
    }


# --------------------------------------------------------------------------------- answers
def test_v1_and_v2_answers_equal_the_runner(served, eval_batch) -> None:  # noqa: ANN001
    server, runner = served
    want = runner.predict(eval_batch)
    status, v1 = post(
        f"{server.url}/v1/models/{server.name}:predict", {"instances": eval_batch.tolist()}
    )
    assert status == 200
    np.testing.assert_allclose(np.array(v1["predictions"]), want, rtol=0, atol=1e-6)
    status, v2 = post(
        f"{server.url}/v2/models/{server.name}/infer", v2_body(runner, eval_batch, id="req-1")
    )
    assert status == 200
    assert v2["id"] == "req-1" and v2["model_name"] == server.name
    out = v2["outputs"][0]
    assert out["name"] == runner.outputs[0].name and out["shape"] == [5, 10]
    np.testing.assert_allclose(np.array(out["data"]).reshape(5, 10), want, rtol=0, atol=1e-6)


def test_binary_tensor_extension_over_http(served, eval_batch) -> None:  # noqa: ANN001
    """Binary input and binary output (Inference-Header-Content-Length) round-trip exactly."""
    server, runner = served
    raw = eval_batch.astype("<f4").tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": runner.inputs[0].name,
                    "shape": list(eval_batch.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    status, headers, body = _request(
        f"{server.url}/v2/models/{server.name}/infer",
        head + raw,
        {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        },
    )
    assert status == 200, body[:300]
    n = int({k.lower(): v for k, v in headers.items()}["inference-header-content-length"])
    meta = json.loads(body[:n])
    assert None not in meta.values()  # no null optional fields
    out = meta["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 5 * 10 * 4
    got = np.frombuffer(body[n:], dtype="<f4").reshape(out["shape"])
    np.testing.assert_array_equal(got, runner.predict(eval_batch).astype(np.float32))


# ------------------------------------------------------------------------------ bad input
def _bad_requests(server: Server, runner: Any, x: np.ndarray) -> list[tuple]:
    name = runner.inputs[0].name
    v2 = f"{server.url}/v2/models/{server.name}/infer"
    v1 = f"{server.url}/v1/models/{server.name}:predict"
    good = v2_body(runner, x)["inputs"][0]
    return [
        (
            "wrong shape",
            v2,
            {"inputs": [{**good, "shape": [1, 32, 32]}]},
            400,
            f"input '{name}' expects shape [-1, 32, 32, 1] (batch first, -1 = any), "
            "got [1, 32, 32]",
        ),
        (
            "wrong datatype",
            v2,
            {"inputs": [{**good, "datatype": "INT32"}]},
            400,
            "has datatype INT32; the model expects FP32",
        ),
        ("missing input", v2, {"inputs": []}, 400, f"missing ['{name}']"),
        (
            "extra input",
            v2,
            {"inputs": [good, {**good, "name": "extra"}]},
            400,
            "unexpected ['extra']",
        ),
        (
            "non-numeric",
            v2,
            {"inputs": [{**good, "data": ["a"] * 1024}]},
            400,
            "expects FP32 numbers, got strings",
        ),
        (
            "data/shape mismatch",
            v2,
            {"inputs": [{**good, "data": [0.0] * 10}]},
            400,
            "shape [1, 32, 32, 1] needs 1024 values, got 10",
        ),
        (
            "schema error (FastAPI 422)",
            v2,
            {"inputs": [{"name": name, "datatype": "FP32"}]},
            400,
            "invalid inference request: inputs.0.shape: Field required",
        ),
        ("malformed JSON v2", v2, b'{"inputs": [', 400, "malformed JSON body"),
        ("malformed JSON v1", v1, b"{nope", 400, "malformed JSON body"),
        ("v1 without instances", v1, {"data": [1]}, 400, 'a V1 request must be {"instances"'),
        ("v1 ragged", v1, {"instances": [[1, 2], [3]]}, 400, "not a rectangular array"),
        (
            "NaN",
            v1,
            b'{"instances": ['
            + json.dumps(x[0].tolist()).replace("0.0", "NaN", 1).encode()
            + b"]}",
            400,
            "malformed JSON body",
        ),
        (
            "batch over max",
            v2,
            {
                "inputs": [
                    {
                        **good,
                        "shape": [MAX_BATCH + 1, 32, 32, 1],
                        "data": [0.0] * ((MAX_BATCH + 1) * 1024),
                    }
                ]
            },
            400,
            f"batch of {MAX_BATCH + 1} is over this server's maximum of {MAX_BATCH}",
        ),
        (
            "unknown output",
            v2,
            {"inputs": [good], "outputs": [{"name": "nope"}]},
            400,
            "unknown requested outputs ['nope']",
        ),
        (
            "body over limit",
            v1,
            {"instances": [[0.5] * 300_000]},
            400,
            f"over this server's limit of {MAX_BODY} bytes",
        ),
        (
            "unknown model v2",
            f"{server.url}/v2/models/nope/infer",
            {"inputs": [good]},
            404,
            "Model with name nope does not exist",
        ),
        (
            "unknown model v1",
            f"{server.url}/v1/models/nope:predict",
            {"instances": []},
            404,
            "Model with name nope does not exist",
        ),
    ]


def test_every_bad_request_is_a_clear_4xx_and_the_server_keeps_serving(
    served,
    eval_batch,  # noqa: ANN001
) -> None:
    server, runner = served
    x = eval_batch[:1]
    want = runner.predict(x)
    for label, url, body, code, message in _bad_requests(server, runner, x):
        status, answer = post(url, body)
        assert status == code, (label, status, answer)
        assert set(answer) == {"error"}, (label, answer)
        assert message in answer["error"], (label, answer["error"])
        status, ok = post(f"{server.url}/v2/models/{server.name}/infer", v2_body(runner, x))
        assert status == 200, (label, ok)
        np.testing.assert_allclose(np.array(ok["outputs"][0]["data"]), want.ravel(), atol=1e-6)
    assert " 500 " not in server.log.read_text()  # no request ended in a server error


def test_body_over_limit_refused_before_it_is_sent(served) -> None:  # noqa: ANN001
    """Content-Length over the limit: 400 at once, the body never sent (no 100 Continue)."""
    server, _ = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"POST /v2/models/{server.name}/infer HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nExpect: 100-continue\r\n"
            "Content-Length: 50000000\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"100 Continue" not in head
    assert "request body of 50000000 bytes is over this server's limit" in json.loads(body)["error"]
    assert get(f"{server.url}/v2/health/live")[0] == 200


def test_concurrent_requests_all_answer_correctly(served, eval_batch) -> None:  # noqa: ANN001
    server, runner = served
    url = f"{server.url}/v2/models/{server.name}/infer"
    # Expected answer per exact batch (ORT dynamic quantization scales activations per batch).
    batches = {(k, n): eval_batch[k : k + n] for k in range(len(eval_batch)) for n in (1, 2)}
    want = {key: runner.predict(x) for key, x in batches.items()}

    def one(i: int) -> bool:
        key = (i % len(eval_batch), 1 + i % 2)  # batches of 1 and 2
        x = batches[key]
        status, ans = post(url, v2_body(runner, x))
        got = np.array(ans["outputs"][0]["data"]).reshape(len(x), 10)
        return status == 200 and np.allclose(got, want[key], atol=1e-6)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(200)))
    assert all(results), f"{results.count(False)} of 200 answers wrong"


# ------------------------------------------------------------------------ OIP conformance
def _oip_validator(reference_dir: Path, schema_name: str) -> Any:
    import jsonschema

    spec = yaml.safe_load((reference_dir / "kserve" / "rest_predict_v2.yaml").read_text())
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft7Validator(schema)


def test_metadata_health_and_answers_conform_to_the_oip_schema(
    served,
    eval_batch,
    reference_dir,  # noqa: ANN001
) -> None:
    server, runner = served
    status, meta = get(f"{server.url}/v2/models/{server.name}")
    assert status == 200
    _oip_validator(reference_dir, "metadata_model_response").validate(meta)
    assert meta["inputs"] == [
        {"name": runner.inputs[0].name, "datatype": "FP32", "shape": [-1, 32, 32, 1]}
    ]
    assert meta["outputs"] == [
        {"name": runner.outputs[0].name, "datatype": "FP32", "shape": [-1, 10]}
    ]
    status, smeta = get(f"{server.url}/v2")
    assert status == 200
    _oip_validator(reference_dir, "metadata_server_response").validate(smeta)
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{server.name}/ready"):
        assert get(server.url + path)[0] == 200, path
    status, err = get(f"{server.url}/v2/models/{server.name}/versions/1")
    assert status == 404 and "has no version '1'" in err["error"]  # not a 5xx (KServe: 501)
    _oip_validator(reference_dir, "inference_error_response").validate(err)
    status, ans = post(
        f"{server.url}/v2/models/{server.name}/infer", v2_body(runner, eval_batch[:2])
    )
    assert status == 200
    _oip_validator(reference_dir, "inference_response").validate(ans)
    status, err = post(f"{server.url}/v2/models/{server.name}/infer", {"inputs": 3})
    assert status == 400
    _oip_validator(reference_dir, "inference_error_response").validate(err)


def test_server_listens_on_loopback_only(served) -> None:  # noqa: ANN001
    server, _ = served
    port_hex = f"{server.port:04X}"
    listeners = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(":" + port_hex):
                listeners.append(local.split(":")[0])
    assert listeners == ["0100007F"], listeners  # 127.0.0.1 only


# ----------------------------------------------------------------------------------- gRPC
def test_grpc_inference_on_loopback(fp32_tflite: Path, eval_batch, tmp_path) -> None:  # noqa: ANN001

    from kfedge.runners import load_runner

    runner = load_runner(fp32_tflite)
    server = Server(fp32_tflite, "digits", tmp_path, grpc=True)
    try:
        res = servingkit.grpc_infer(server.grpc_port, "digits", runner.inputs[0].name, eval_batch)
        np.testing.assert_allclose(res.outputs[0].as_numpy(), runner.predict(eval_batch), atol=1e-6)
        with pytest.raises(Exception, match="INVALID_ARGUMENT") as info:
            servingkit.grpc_infer(
                server.grpc_port, "digits", runner.inputs[0].name, eval_batch[:, :, :, 0]
            )
        assert "expects shape [-1, 32, 32, 1]" in str(info.value)
        assert get(f"{server.url}/v2/health/live")[0] == 200
    finally:
        server.stop()
