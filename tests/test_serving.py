"""kfedge.serving in-process: model checks, app wiring, binary decoding, no TensorFlow on the path.

Over-HTTP behaviour (real server subprocess) is in test_serving_http.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kserve")


@pytest.fixture(scope="module")
def candidate_dir(fp32_tflite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A candidate directory (model.tflite + candidate.json), as KServe mounts it."""
    import shutil

    from kfedge.candidate import Candidate, save_candidate

    d = tmp_path_factory.mktemp("cand")
    shutil.copy(fp32_tflite, d / "model.tflite")
    save_candidate(Candidate("fp32", "baseline", "tflite", "model.tflite"), d)
    return d


def _client(model):  # noqa: ANN001, ANN202
    from starlette.testclient import TestClient

    from kfedge.serving.server import EdgeServer

    server = EdgeServer(model, max_body_bytes=1 << 20)
    return TestClient(server.app)


@pytest.fixture(scope="module")
def loaded(candidate_dir: Path):  # noqa: ANN201
    from kfedge.serving.model import EdgeModel

    model = EdgeModel("digits", candidate_dir, max_batch=8)
    model.load()
    yield model
    model.stop()


def test_serving_path_never_imports_tensorflow(candidate_dir: Path) -> None:
    """Loading, wiring the app and predicting must not pull TensorFlow into the process."""
    code = (
        "import sys, numpy as np\n"
        "from kfedge.serving.model import EdgeModel\n"
        "from kfedge.serving.server import EdgeServer\n"
        "import kfedge.serving.__main__\n"
        f"m = EdgeModel('m', {str(candidate_dir)!r}); m.load()\n"
        "EdgeServer(m)\n"
        "y = m.runner.predict(np.zeros((2, 32, 32, 1), np.float32))\n"
        "assert y.shape == (2, 10), y.shape\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization', 'tf2onnx'))\n"
        "print('LEAKED', bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LEAKED []" in out.stdout, out.stdout


def test_candidate_directory_resolves_and_metadata_has_real_names(loaded) -> None:  # noqa: ANN001
    assert loaded.path.name == "model.tflite"
    assert loaded.get_input_types() == [
        {"name": loaded.runner.inputs[0].name, "datatype": "FP32", "shape": [-1, 32, 32, 1]}
    ]
    assert loaded.get_output_types() == [
        {"name": loaded.runner.outputs[0].name, "datatype": "FP32", "shape": [-1, 10]}
    ]


def test_resolve_model_refuses_non_deployable_formats(baseline_model: Path) -> None:
    from kfedge.errors import ModelFormatError, NotFoundError
    from kfedge.serving.model import resolve_model

    with pytest.raises(ModelFormatError, match=r"serves tflite, onnx or \w+ models; .*is keras"):
        resolve_model(baseline_model)
    with pytest.raises((NotFoundError, ModelFormatError), match="not found"):
        resolve_model("/nonexistent/model.tflite")


def test_unloaded_model_answers_503_and_server_not_ready(candidate_dir: Path) -> None:
    from kfedge.serving.model import EdgeModel

    model = EdgeModel("digits", candidate_dir)  # never loaded
    c = _client(model)
    r = c.post("/v2/models/digits/infer", json={"inputs": []})
    assert r.status_code == 503 and "not ready" in r.json()["error"]
    assert c.post("/v1/models/digits:predict", json={"instances": [[1]]}).status_code == 503
    assert c.get("/v2/health/ready").status_code == 503
    assert c.get("/v2/health/live").status_code == 200
    assert c.get("/v2/models/digits/ready").status_code == 503
    assert c.get("/v2/models/other/ready").status_code == 404


def test_in_process_v1_v2_match_runner_and_errors_are_oip_400(loaded) -> None:  # noqa: ANN001
    c = _client(loaded)
    x = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    want = loaded.runner.predict(x)
    name = loaded.runner.inputs[0].name
    r = c.post("/v1/models/digits:predict", json={"instances": x.tolist()})
    assert r.status_code == 200
    np.testing.assert_allclose(np.array(r.json()["predictions"]), want, rtol=0, atol=1e-6)
    body = {
        "inputs": [
            {"name": name, "shape": [3, 32, 32, 1], "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    r = c.post("/v2/models/digits/infer", json=body)
    assert r.status_code == 200
    out = r.json()["outputs"][0]
    assert out["shape"] == [3, 10] and out["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 10), want, atol=1e-6)
    # schema error (FastAPI 422 in KServe) -> 400 {"error"}
    r = c.post("/v2/models/digits/infer", json={"inputs": [{"name": name}]})
    assert r.status_code == 400
    assert r.json()["error"].startswith("invalid inference request: inputs.0.shape: Field required")
    # batch over max_batch (8)
    big = {"inputs": [{**body["inputs"][0], "shape": [9, 32, 32, 1], "data": [0.0] * (9 * 1024)}]}
    r = c.post("/v2/models/digits/infer", json=big)
    assert (
        r.status_code == 400
        and "batch of 9 is over this server's maximum of 8" in r.json()["error"]
    )


def test_status_table_is_the_one_http_mapping() -> None:
    """kfedge errors carry no HTTP concept; the serving table maps them, most specific first."""
    import kfedge.errors as errors
    from kfedge.deploy import DeployError
    from kfedge.serving.errors import HTTP_STATUS, http_status

    for name in dir(errors):
        assert not hasattr(getattr(errors, name), "http_status"), name
    assert not hasattr(DeployError, "http_status")
    assert http_status(errors.DataError("x")) == 400  # through InvalidInputError
    assert http_status(errors.ConfigError("x")) == 400
    assert http_status(errors.NotFoundError("x")) == 404
    assert http_status(errors.StorageError("x")) == 503
    assert http_status(errors.DependencyError("x")) == 503
    assert http_status(errors.KfedgeError("x")) == 500  # not a client error: a server fault
    assert http_status(DeployError("x")) == 500
    assert all(issubclass(c, errors.KfedgeError) for c in HTTP_STATUS)


@pytest.mark.parametrize(
    ("error", "status"),
    [("DataError", 400), ("NotFoundError", 404), ("NotReadyError", 503), ("KfedgeError", 500)],
)
def test_runner_errors_are_answered_with_the_table_status(
    loaded,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
    error: str,
    status: int,
) -> None:
    import kfedge.errors as errors

    def fail(feeds):  # noqa: ANN001, ANN202
        raise getattr(errors, error)(f"runner says {error}")

    monkeypatch.setattr(loaded.runner, "run", fail)
    c = _client(loaded)
    x = np.zeros((1, 32, 32, 1), np.float32).tolist()
    r = c.post("/v1/models/digits:predict", json={"instances": x})
    assert r.status_code == status, r.text
    assert f"runner says {error}" in r.json()["error"]


def test_decode_binary_request_checks_sizes() -> None:
    from kserve.errors import InvalidInput

    from kfedge.serving.binary import decode_binary_request

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    head = {
        "inputs": [
            {
                "name": "a",
                "shape": [2, 3],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 24},
            }
        ]
    }
    h = json.dumps(head).encode()
    req = decode_binary_request(
        h + x.tobytes(), {"inference-header-content-length": str(len(h))}, "m"
    )
    np.testing.assert_array_equal(req.inputs[0].data.reshape(2, 3), x)
    hdr = {"inference-header-content-length": str(len(h))}
    with pytest.raises(InvalidInput, match="24 bytes of binary data declared at offset"):
        decode_binary_request(h + x.tobytes()[:-4], hdr, "m")
    with pytest.raises(InvalidInput, match="4 bytes after the declared binary data"):
        decode_binary_request(h + x.tobytes() + b"\0" * 4, hdr, "m")
    head["inputs"][0]["parameters"]["binary_data_size"] = 20
    h2 = json.dumps(head).encode()
    with pytest.raises(InvalidInput, match=r"needs 24 bytes, but binary_data_size is 20"):
        decode_binary_request(
            h2 + x.tobytes()[:20], {"inference-header-content-length": str(len(h2))}, "m"
        )
    with pytest.raises(InvalidInput, match="must be an integer, got 'abc'"):
        decode_binary_request(h + x.tobytes(), {"inference-header-content-length": "abc"}, "m")
    with pytest.raises(InvalidInput, match="but the body has"):
        decode_binary_request(b"{}", {"inference-header-content-length": "99"}, "m")
    # no header: the body must be a plain JSON request
    with pytest.raises(InvalidInput, match="malformed JSON body"):
        decode_binary_request(b"\x00\x01", {}, "m")


def test_main_refuses_a_model_it_cannot_serve(baseline_model: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfedge.serving",
            "--model_dir",
            str(baseline_model),
            "--host",
            "127.0.0.1",
            "--http_port",
            "1",
            "--enable_grpc",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: the model server serves tflite, onnx or ")
    assert "is keras" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_main_refuses_several_workers(candidate_dir: Path) -> None:
    from kfedge.serving.__main__ import main

    assert main(["--model_dir", str(candidate_dir), "--workers", "2"]) == 2


def _serve_main(*args: str) -> subprocess.CompletedProcess[str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    return subprocess.run(
        [sys.executable, "-m", "kfedge.serving", "--host", "127.0.0.1", "--http_port", port,
         "--enable_grpc", "false", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_main_refuses_an_absent_accelerator_when_told(fp32_onnx: Path) -> None:
    """What deploy passes for a GPU / NPU target (--cpu_fallback=refuse, as the evaluation
    refused): on a node without the provider the server does not start, so it never becomes
    ready, instead of serving on the CPU what was measured on the accelerator."""
    out = _serve_main(
        "--model_dir", str(fp32_onnx),
        "--providers", "CUDAExecutionProvider,CPUExecutionProvider",
        "--provider_options", '{"CUDAExecutionProvider": {"device_id": "0"}}',
        "--cpu_fallback", "refuse",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "CUDAExecutionProvider" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_main_refuses_provider_options_that_are_not_json(fp32_onnx: Path) -> None:
    out = _serve_main("--model_dir", str(fp32_onnx), "--provider_options", "trt_fp16=1")
    assert out.returncode == 2
    assert out.stderr.startswith("error: --provider_options must be JSON like")


def test_model_passes_the_targets_runtime_settings(fp32_onnx: Path, monkeypatch) -> None:  # noqa: ANN001
    """The provider options and delegate reach the runner, and an absent provider with
    fallback allowed runs on the CPU and says so."""
    import kfedge.serving.model as served

    seen: dict = {}
    real = served.load_runner

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(served, "load_runner", spy)
    options = {"CUDAExecutionProvider": {"device_id": "0"}}
    model = served.EdgeModel(
        "m",
        fp32_onnx,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        provider_options=options,
        infer_workers=1,
    )
    model.load()
    assert seen["provider_options"] == options and seen["allow_cpu_fallback"] is True
    assert model.runner.describe().get("fallback_to_cpu")
