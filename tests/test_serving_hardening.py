"""The model server under hostile or unlucky conditions (issue 13's defects, one test each).

Large bodies and probes, a body limit derived from the model, TLS, stalled uploads, a shared
gRPC port, lone surrogates, a corrupt candidate.json, one log line per bad gRPC request, a busy
HTTP port, only served extensions advertised, gzip bodies, the model file changed while serving.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import shutil
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servingkit import ServerProcess, free_port, get, grpc_infer, post, request, run_server, v2_body

pytest.importorskip("kserve")


@pytest.fixture(scope="module")
def tflite_copy(fp32_tflite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kfedge.candidate import model_path

    dst = tmp_path_factory.mktemp("hard") / "model.tflite"
    shutil.copy(model_path(fp32_tflite), dst)
    return dst


@pytest.fixture(scope="module")
def runner(tflite_copy: Path) -> Any:
    from kfedge.runners import load_runner

    return load_runner(tflite_copy, threads=1)


@pytest.fixture(scope="module")
def loaded(tflite_copy: Path):  # noqa: ANN201
    from kfedge.serving.model import EdgeModel

    model = EdgeModel("digits", tflite_copy, max_batch=8, infer_workers=2)
    model.load()
    yield model
    model.stop()


def _client(model: Any, **kwargs: Any) -> Any:
    from starlette.testclient import TestClient

    from kfedge.serving.server import EdgeServer

    return TestClient(EdgeServer(model, **kwargs).app)


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 1), dtype=np.float32)


def _one_line(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


# ------------------------------------------------------------------- 1: limits, probes
def test_body_limit_is_derived_from_the_model(loaded) -> None:  # noqa: ANN001
    """Before: a flat 16 MiB for every model; now max batch x input size x JSON overhead."""
    from kfedge.serving.limits import DEFAULT_MAX_BODY_BYTES, model_body_limit

    c = _client(loaded)
    limit = model_body_limit(loaded.runner.inputs, loaded.max_batch, DEFAULT_MAX_BODY_BYTES)
    assert limit < DEFAULT_MAX_BODY_BYTES
    assert limit >= loaded.max_batch * 32 * 32 * 20  # a max-batch JSON request fits
    name = loaded.runner.inputs[0].name
    ok = c.post("/v2/models/digits/infer", json=v2_body(name, _x(8)))
    assert ok.status_code == 200, ok.text
    big = json.dumps(v2_body(name, _x(80))).encode()  # ten times the max batch
    assert limit < len(big) < DEFAULT_MAX_BODY_BYTES
    r = c.post("/v2/models/digits/infer", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert f"over this server's limit of {limit} bytes" in r.json()["error"]
    # an explicit --max_body_bytes below the derived limit is the cap
    c2 = _client(loaded, max_body_bytes=1000)
    r = c2.post("/v2/models/digits/infer", json=v2_body(name, _x(1)))
    assert r.status_code == 400 and "limit of 1000 bytes" in r.json()["error"]


def test_probes_answer_while_large_bodies_are_parsed(tflite_copy: Path, tmp_path: Path) -> None:
    """Before: JSON bodies were parsed on the event loop (~1.35 s for 15 MB), probes timed out."""
    server = ServerProcess(
        tflite_copy,
        "digits",
        tmp_path,
        ["--max_batch", "1024", "--max_body_bytes", str(64 << 20), "--infer_workers", "2"],
    )
    try:
        name = "x"
        meta = get(f"{server.url}/v2/models/digits")[1]
        name = meta["inputs"][0]["name"]
        x = _x(640)
        v2 = json.dumps(v2_body(name, x)).encode()  # ~13 MB
        v1 = json.dumps({"instances": x.tolist()}).encode()
        assert len(v2) > 10 << 20
        stop = threading.Event()
        answers: list[int] = []

        def client(url: str, body: bytes) -> None:
            while not stop.is_set():
                status, _, _ = request(url, body, {"content-type": "application/json"}, 60)
                answers.append(status)

        urls = [
            (f"{server.url}/v2/models/digits/infer", v2),
            (f"{server.url}/v2/models/digits/infer", v2),
            (f"{server.url}/v1/models/digits:predict", v1),
        ]
        threads = [threading.Thread(target=client, args=u) for u in urls]
        for t in threads:
            t.start()
        latencies = []
        try:
            time.sleep(0.5)
            end = time.monotonic() + 8
            while time.monotonic() < end:
                t0 = time.monotonic()
                status, _, _ = request(f"{server.url}/v2/health/ready", timeout=10)
                latencies.append(time.monotonic() - t0)
                assert status == 200
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert answers and set(answers) == {200}, answers
        # Kubernetes' default probe timeout is 1 s.
        assert max(latencies) < 1.0, sorted(latencies)[-5:]
    finally:
        server.stop()


# ----------------------------------------------------------------------------- 3: TLS
def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp / "cert.pem", tmp / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def test_tls_flags_serve_https(tflite_copy: Path, tmp_path: Path) -> None:
    """Before: --ssl_certfile / --ssl_keyfile were accepted and plain HTTP was served."""
    pytest.importorskip("cryptography")
    certfile, keyfile = _self_signed(tmp_path)
    ctx = ssl.create_default_context(cafile=str(certfile))
    server = ServerProcess(
        tflite_copy,
        "digits",
        tmp_path,
        ["--ssl_certfile", str(certfile), "--ssl_keyfile", str(keyfile)],
        scheme="https",
        context=ctx,
    )
    try:
        status, _, body = request(f"{server.url}/v2/health/ready", context=ctx)
        assert status == 200 and json.loads(body) == {"ready": True}
        with pytest.raises(OSError):  # plain HTTP is not answered
            request(f"http://127.0.0.1:{server.port}/v2/health/ready", timeout=5)
        assert f"https://127.0.0.1:{server.port}" in server.log_text()
    finally:
        server.stop()
    # one of the two is refused with one line
    out = run_server(
        ["--model_dir", str(tflite_copy), "--http_port", str(free_port()),
         "--enable_grpc", "false", "--ssl_certfile", str(certfile)]
    )  # fmt: skip
    assert out.returncode == 2
    assert _one_line(out.stdout + out.stderr) == [
        "error: --ssl_certfile and --ssl_keyfile go together (HTTPS needs both); "
        "got only --ssl_certfile"
    ]


# ------------------------------------------------------------------ 4: stalled uploads
def test_stalled_uploads_time_out_and_in_flight_bodies_are_limited(
    tflite_copy: Path, tmp_path: Path
) -> None:
    """Before: a client that stalled mid-body held its memory (and a slot) forever."""
    server = ServerProcess(
        tflite_copy, "digits", tmp_path, ["--body_timeout", "2", "--max_inflight", "4"]
    )
    socks: list[socket.socket] = []
    try:
        head = (
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 300000\r\n\r\n"
        )
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            s.sendall(head + b"[" * 100_000)  # a third of the body, then nothing
            socks.append(s)
        time.sleep(0.3)
        # a fifth body is refused at once (busy), probes still answer
        t0 = time.monotonic()
        status, headers, body = request(
            f"{server.url}/v2/models/digits/infer", b"{}", {"content-type": "application/json"}
        )
        assert status == 503 and "requests with a body are in progress" in json.loads(body)["error"]
        assert headers.get("retry-after") or headers.get("Retry-After")
        assert get(f"{server.url}/v2/health/ready")[0] == 200
        assert time.monotonic() - t0 < 2
        # the stalled ones are answered 408 and closed after the body timeout
        for s in socks:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
            assert b"request body not received within 2" in data
        assert time.monotonic() - t0 < 10
        # and the server takes bodies again
        meta = get(f"{server.url}/v2/models/digits")[1]
        status, ans = post(
            f"{server.url}/v2/models/digits/infer", v2_body(meta["inputs"][0]["name"], _x(1))
        )
        assert status == 200, ans
    finally:
        for s in socks:
            s.close()
        server.stop()


def test_http_socket_is_tcp_so_answers_are_not_delayed() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose proto is TCP (else ~40 ms per answer)."""
    from kfedge.serving.server import bind_http

    sock = bind_http("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        sock.listen()
        with socket.create_connection(sock.getsockname()[:2]):
            conn, _ = sock.accept()
            with conn:
                assert conn.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


# ------------------------------------------------------------------- 5: the gRPC port
def test_a_second_server_cannot_share_the_grpc_port(tflite_copy: Path, tmp_path: Path) -> None:
    """Before: gRPC's SO_REUSEPORT let a second server start and take half the connections."""
    first = ServerProcess(tflite_copy, "digits", tmp_path, grpc=True)
    try:
        out = run_server(
            ["--model_dir", str(tflite_copy), "--host", "127.0.0.1",
             "--http_port", str(free_port()), "--grpc_port", str(first.grpc_port)]
        )  # fmt: skip
        assert out.returncode == 2, out.stdout + out.stderr
        lines = _one_line(out.stdout + out.stderr)
        assert len(lines) == 1, lines
        assert f"127.0.0.1:{first.grpc_port}" in lines[0] and "in use" in lines[0]
    finally:
        first.stop()


# ------------------------------------------------------------------- 6: surrogates
def test_lone_surrogates_are_not_server_errors(loaded) -> None:  # noqa: ANN001
    """Before: a lone UTF-16 surrogate echoed in an answer made the JSON encoder fail (500)."""
    c = _client(loaded)
    name = loaded.runner.inputs[0].name
    good = v2_body(name, _x(1))
    hdr = {"content-type": "application/json"}
    body = json.dumps({**good, "id": "\ud800x"}).encode()  # json escapes it as \\ud800
    assert b"\\ud800" in body
    r = c.post("/v2/models/digits/infer", content=body, headers=hdr)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json()["id"] == "\\ud800x"
    bad = dict(good["inputs"][0], datatype="\ud800")
    r = c.post(
        "/v2/models/digits/infer", content=json.dumps({"inputs": [bad]}).encode(), headers=hdr
    )
    assert r.status_code == 400, r.text
    r = c.post(
        "/v2/models/digits/infer",
        content=json.dumps({"inputs": [dict(good["inputs"][0], name="\udfff")]}).encode(),
        headers=hdr,
    )
    assert r.status_code == 400, r.text
    r = c.post(
        "/v1/models/digits:predict",
        content=json.dumps({"instances": [{"\ud800": 1}]}).encode(),
        headers=hdr,
    )
    assert r.status_code == 400, r.text


def test_values_out_of_the_fp32_range_are_refused(loaded) -> None:  # noqa: ANN001
    """Found by the fuzzer: 1e39 is finite as JSON (float64) but infinite once cast to FP32."""
    c = _client(loaded)
    name = loaded.runner.inputs[0].name
    body = v2_body(name, _x(1))
    body["inputs"][0]["data"][5] = -1e39
    r = c.post("/v2/models/digits/infer", json=body)
    assert r.status_code == 400 and "out of the FP32 range" in r.json()["error"], r.text
    r = c.post("/v1/models/digits:predict", json={"instances": [[[[1e39]] * 32] * 32]})
    assert r.status_code == 400 and "out of the FP32 range" in r.json()["error"], r.text


# ----------------------------------------------------------------- 7: one-line failures
def test_corrupt_candidate_json_is_one_line_and_exit_2(tflite_copy: Path, tmp_path: Path) -> None:
    """Before: a traceback and exit status 1."""
    d = tmp_path / "cand"
    d.mkdir()
    shutil.copy(tflite_copy, d / "model.tflite")
    (d / "candidate.json").write_text('{"name": "x", "technique"')
    out = run_server(
        ["--model_dir", str(d), "--http_port", str(free_port()), "--enable_grpc", "false"]
    )
    assert out.returncode == 2
    lines = _one_line(out.stdout + out.stderr)
    assert len(lines) == 1, lines
    assert "candidate.json" in lines[0] and "Traceback" not in out.stderr
    (d / "candidate.json").write_text('{"name": "x", "surprise": 1}')
    out = run_server(
        ["--model_dir", str(d), "--http_port", str(free_port()), "--enable_grpc", "false"]
    )
    assert out.returncode == 2 and len(_one_line(out.stdout + out.stderr)) == 1, out.stderr


def test_http_port_in_use_fails_before_it_says_it_serves(tflite_copy: Path) -> None:
    """Before: exit 3 after logging that it was serving."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_server(
            ["--model_dir", str(tflite_copy), "--host", "127.0.0.1", "--http_port", str(port),
             "--enable_grpc", "false"]
        )  # fmt: skip
    assert out.returncode == 2
    lines = _one_line(out.stdout + out.stderr)
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]


def test_bad_grpc_request_is_one_log_line(tflite_copy: Path, runner, tmp_path: Path) -> None:  # noqa: ANN001
    """Before: ~24 ERROR lines with a traceback per bad gRPC request (REST: one line)."""
    server = ServerProcess(tflite_copy, "digits", tmp_path, grpc=True)
    name = runner.inputs[0].name
    try:
        before = len(server.log_text().splitlines())
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            grpc_infer(server.grpc_port, "digits", name, _x(1)[:, :, :, 0])
        time.sleep(0.3)
        new = server.log_text().splitlines()[before:]
        assert len(new) == 1, new
        assert "expects shape [-1, 32, 32, 1]" in new[0] and "Traceback" not in new[0]
        res = grpc_infer(server.grpc_port, "digits", name, _x(2))
        np.testing.assert_allclose(res.outputs[0].as_numpy(), runner.predict(_x(2)), atol=1e-6)
    finally:
        server.stop()


def test_v2_metadata_advertises_only_served_extensions(loaded) -> None:  # noqa: ANN001
    """Before: /v2 listed the model repository extension, whose endpoints 404."""
    c = _client(loaded)
    ext = c.get("/v2").json()["extensions"]
    assert "model_repository_extension" not in ext
    for e in ext:
        assert e == "binary_tensor_data", ext


def test_gzip_bodies_are_decoded_within_the_limit(loaded) -> None:  # noqa: ANN001
    """Before: Content-Encoding: gzip was answered 'malformed JSON'."""
    from kfedge.serving.limits import model_body_limit

    c = _client(loaded)
    name = loaded.runner.inputs[0].name
    x = _x(2)
    want = loaded.runner.predict(x)
    body = gzip.compress(json.dumps(v2_body(name, x)).encode())
    hdr = {"content-type": "application/json", "content-encoding": "gzip"}
    r = c.post("/v2/models/digits/infer", content=body, headers=hdr)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        np.array(r.json()["outputs"][0]["data"]).reshape(2, 10), want, atol=1e-6
    )
    r = c.post(
        "/v1/models/digits:predict",
        content=gzip.compress(json.dumps({"instances": x.tolist()}).encode()),
        headers=hdr,
    )
    assert r.status_code == 200, r.text
    # a zip bomb: small on the wire, over the limit once decompressed
    limit = model_body_limit(loaded.runner.inputs, loaded.max_batch)
    bomb = gzip.compress(b" " * (limit + 10))
    assert len(bomb) < limit // 100
    r = c.post("/v2/models/digits/infer", content=bomb, headers=hdr)
    assert r.status_code == 400 and "decompressed" in r.json()["error"], r.text
    r = c.post("/v2/models/digits/infer", content=b"not gzip", headers=hdr)
    assert r.status_code == 400 and "gzip" in r.json()["error"], r.text
    r = c.post("/v2/models/digits/infer", content=body, headers={**hdr, "content-encoding": "br"})
    assert r.status_code == 415 and "gzip" in r.json()["error"], r.text


# --------------------------------------------------------------- 2: the model file changes
def test_model_file_overwritten_while_serving_keeps_answering(
    fp32_tflite: Path, int8_onnx_free_model: Path, tmp_path: Path
) -> None:
    """Before: overwriting the .tflite in place gave a 500, then 500 'Dimension mismatch'."""
    from kfedge.candidate import model_path
    from kfedge.runners import load_runner

    path = tmp_path / "model.tflite"
    shutil.copy(model_path(fp32_tflite), path)
    runner = load_runner(path, threads=1)
    server = ServerProcess(path, "digits", tmp_path)
    try:
        url = f"{server.url}/v2/models/digits/infer"
        name = runner.inputs[0].name
        assert post(url, v2_body(name, _x(1)))[0] == 200
        with path.open("r+b") as fh:  # in place: same inode, other bytes
            fh.write(int8_onnx_free_model.read_bytes())
        for n in (2, 1, 3, 1):
            status, ans = post(url, v2_body(name, _x(n, n)))
            assert status == 200, ans
            got = np.array(ans["outputs"][0]["data"]).reshape(n, 10)
            np.testing.assert_allclose(got, runner.predict(_x(n, n)), atol=1e-6)
        path.write_bytes(b"")  # truncated
        assert post(url, v2_body(name, _x(2)))[0] == 200
        assert get(f"{server.url}/v2/health/ready")[0] == 200
        assert " 500 " not in server.log_text()
    finally:
        server.stop()


@pytest.fixture()
def int8_onnx_free_model(fp32_onnx: Path) -> Path:
    """Some other model's bytes (what an in-place overwrite would write)."""
    from kfedge.candidate import model_path

    return model_path(fp32_onnx)


def test_a_json_boolean_is_not_a_shape_dimension(loaded) -> None:  # noqa: ANN001
    """Before: pydantic's lax mode read ``[true, 32, 32, 1]`` as ``[1, 32, 32, 1]`` (200)."""
    c = _client(loaded)
    name = loaded.runner.inputs[0].name
    body = v2_body(name, _x(1))
    assert c.post("/v2/models/digits/infer", json=body).status_code == 200
    for bad in (True, 1.0, "1"):
        body["inputs"][0]["shape"][0] = bad
        r = c.post("/v2/models/digits/infer", json=body)
        assert r.status_code == 400 and "shape" in r.json()["error"], (bad, r.text)


def test_only_bad_input_is_a_400_a_decoder_fault_is_a_500(loaded, monkeypatch) -> None:  # noqa: ANN001
    """Before: any KeyError / TypeError / AttributeError of the decoder became a 400, so a
    decoder bug could never count as a crash in the fuzz figures."""
    from kserve.protocol.dataplane import DataPlane
    from starlette.testclient import TestClient

    from kfedge.serving.server import EdgeServer

    c = TestClient(EdgeServer(loaded, decode_processes=0).app, raise_server_exceptions=False)
    ce = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "t", "ce-type": "t"}
    r = c.post("/v1/models/digits:predict", content=b"", headers=ce)
    assert r.status_code == 400 and "CloudEvent" in r.json()["error"], r.text
    bad_ce = {**ce, "ce-specversion": "9.9", "content-type": "application/json"}
    r = c.post("/v1/models/digits:predict", content=b'{"instances": [1]}', headers=bad_ce)
    assert r.status_code == 400, r.text

    def buggy(*a: Any, **k: Any) -> Any:
        raise KeyError("a bug in the decoder")

    monkeypatch.setattr(DataPlane, "decode", buggy)
    r = c.post("/v1/models/digits:predict", json={"instances": _x(1).tolist()})
    assert r.status_code == 500, r.text


def test_a_12mb_body_over_a_small_models_limit_gets_the_answer_not_a_reset(
    tflite_copy: Path, tmp_path: Path
) -> None:
    """Before: a refused body over 4x the limit was closed unread: the client, still sending,
    got a connection reset instead of the answer."""
    server = ServerProcess(tflite_copy, "digits", tmp_path, [])
    try:
        body = b'{"instances": [' + b"0.5, " * (12 * 1024 * 1024 // 5) + b"0.5]}"
        status, _, answer = request(
            f"{server.url}/v1/models/digits:predict", body, {"content-type": "application/json"}
        )
        assert status == 400, answer[:200]
        assert "over this server's limit" in json.loads(answer)["error"]
    finally:
        server.stop()
