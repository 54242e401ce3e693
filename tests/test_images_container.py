"""The serving images, built and run in a real Docker engine, serve as a KServe predictor does.

``make images`` (``python -m kfedge.images local``) builds the images into the local engine;
``.ci/run`` starts dockerd on its own socket, builds them and sets ``KFEDGE_REQUIRE_DOCKER=1``,
so there these tests fail instead of skipping when the engine or the image is missing.

Each container runs the way the kfedge ClusterServingRuntimes run the predictor: model mounted
read-only at ``/mnt/models``, uid 10001, read-only root filesystem, all capabilities dropped, no
privilege escalation, ports published on 127.0.0.1 only. Every format is served by the image
with every runtime (``kfedge-edge``) and by its one-runtime image (``kfedge-edge-<runtime>``,
what deploy names), which must hold no other runtime.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dockerkit import require_image
from servingkit import free_port, grpc_infer, post, request

from kfedge.compat import RUNTIME_MODULE
from kfedge.images import image_catalog, serving_image_for

#: The model fixture of each format.
MODEL_OF = {"tflite": "fp32_tflite", "onnx": "fp32_onnx", "openvino": "ir_model"}
#: (image, format): the every-runtime image with each format, each one-runtime image with its own.
CASES = [("serving", fmt) for fmt in MODEL_OF] + [
    (serving_image_for(fmt).name, fmt) for fmt in MODEL_OF
]


@pytest.fixture(scope="module")
def serving_image() -> str:
    """The every-runtime serving image, present and built from this checkout's sources."""
    return require_image("serving")


@pytest.fixture(scope="module")
def ir_model(fp32_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ov = pytest.importorskip("openvino")
    from kfedge.candidate import model_path

    out = tmp_path_factory.mktemp("ir") / "model.xml"
    ov.save_model(ov.convert_model(str(model_path(fp32_onnx))), str(out), compress_to_fp16=False)
    return out


@pytest.fixture(scope="module")
def eval_batch(sample_dataset: Path) -> np.ndarray:
    from kfedge.data import load_split

    x, _ = load_split(sample_dataset, "eval", limit=5)
    return x


def _model_dir(model: Path, dest: Path) -> Path:
    """A model directory as the storage initializer leaves it, readable by uid 10001."""
    from kfedge.candidate import model_path

    src = model_path(model)
    dest.mkdir(parents=True, exist_ok=True)
    for f in [src, src.with_suffix(".bin")] if src.suffix == ".xml" else [src]:
        shutil.copy2(f, dest / f.name)
        (dest / f.name).chmod(0o644)
    dest.chmod(0o755)
    return dest


class Container:
    """``docker run -d`` of the serving image, hardened as the ClusterServingRuntime runs it."""

    def __init__(self, image: str, model_dir: Path, name: str = "model") -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        self.name = name
        cmd = [
            "docker", "run", "-d",
            "--read-only", "--tmpfs", "/tmp:rw,size=64m",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", "10001:10001",
            "-v", f"{model_dir}:/mnt/models:ro",
            "-p", f"127.0.0.1:{self.http_port}:8080", "-p", f"127.0.0.1:{self.grpc_port}:8081",
            image,
            "--model_dir=/mnt/models", f"--model_name={name}",
            "--http_port=8080", "--grpc_port=8081",
        ]  # fmt: skip
        self.started = time.perf_counter()
        self.id = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        self.url = f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from ``docker run`` to ``/v2/health/ready`` answering 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if request(f"{self.url}/v2/health/ready", timeout=2)[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            if not self.running():
                raise AssertionError(f"container exited: {self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"not ready in {timeout} s: {self.logs()}")

    def running(self) -> bool:
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Running}}", self.id],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return out.stdout.strip() == "true"

    def exec(self, *argv: str) -> str:
        return subprocess.run(
            ["docker", "exec", self.id, *argv], capture_output=True, text=True, check=True
        ).stdout

    def logs(self) -> str:
        out = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True)
        return out.stdout + out.stderr

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True, check=False)


@pytest.fixture(scope="module", params=CASES, ids=[f"{i}-{f}" for i, f in CASES])
def served(request, tmp_path_factory) -> Iterator[tuple]:  # noqa: ANN001
    """(container, in-process runner) for a .tflite, an .onnx and an OpenVINO IR candidate."""
    from kfedge.runners import load_runner

    name, fmt = request.param
    image = require_image(name)
    model = request.getfixturevalue(MODEL_OF[fmt])
    c = Container(image, _model_dir(model, tmp_path_factory.mktemp("models")))
    c.image = next(s for s in image_catalog() if s.name == name)
    try:
        c.ready_s = c.wait_ready()
        yield c, load_runner(model)
    finally:
        c.remove()


def test_container_answers_what_the_runner_answers(served, eval_batch) -> None:  # noqa: ANN001
    """V1, V2 HTTP and V2 gRPC from the container equal the in-process runner's answer."""
    c, runner = served
    want = runner.predict(eval_batch)
    status, v1 = post(f"{c.url}/v1/models/{c.name}:predict", {"instances": eval_batch.tolist()})
    assert status == 200, v1
    np.testing.assert_allclose(np.array(v1["predictions"]), want, rtol=0, atol=1e-6)
    spec = runner.inputs[0]
    body = {
        "id": "r1",
        "inputs": [
            {
                "name": spec.name,
                "shape": list(eval_batch.shape),
                "datatype": "FP32",
                "data": eval_batch.ravel().tolist(),
            }
        ],
    }
    status, v2 = post(f"{c.url}/v2/models/{c.name}/infer", body)
    assert status == 200, v2
    out = v2["outputs"][0]
    np.testing.assert_allclose(np.array(out["data"]).reshape(want.shape), want, rtol=0, atol=1e-6)
    res = grpc_infer(c.grpc_port, c.name, spec.name, eval_batch)
    np.testing.assert_allclose(res.outputs[0].as_numpy(), want, rtol=0, atol=1e-6)
    assert c.ready_s < 60


def test_container_is_non_root_read_only_and_holds_no_tensorflow(served) -> None:  # noqa: ANN001
    c, _ = served
    assert c.exec("id", "-u").strip() == "10001"
    probe = (
        "import importlib.util, json, os, sys;"
        "print(json.dumps({'tf': importlib.util.find_spec('tensorflow') is not None,"
        "'keras': importlib.util.find_spec('tf_keras') is not None,"
        "'root_writable': os.access('/opt/kfedge', os.W_OK),"
        "'models_writable': os.access('/mnt/models', os.W_OK)}))"
    )
    facts = json.loads(c.exec("python", "-c", probe))
    assert facts == {"tf": False, "keras": False, "root_writable": False, "models_writable": False}
    # the runtimes it serves, and no other; no pip (nothing installs at run time)
    probe = (
        "import importlib.util, json;"
        f"print(json.dumps([m for m in {sorted(RUNTIME_MODULE.values())!r} + ['pip'] "
        "if importlib.util.find_spec(m) is not None]))"
    )
    held = set(json.loads(c.exec("python", "-c", probe)))
    assert held == {RUNTIME_MODULE[f] for f in c.image.formats}
    caps = [ln for ln in c.exec("cat", "/proc/1/status").splitlines() if ln.startswith("CapEff")]
    assert caps == ["CapEff:\t0000000000000000"]


def test_published_ports_are_loopback_only(served) -> None:  # noqa: ANN001
    c, _ = served
    out = subprocess.run(["docker", "port", c.id], capture_output=True, text=True, check=True)
    hosts = {line.split("-> ")[1].rsplit(":", 1)[0] for line in out.stdout.splitlines()}
    assert hosts == {"127.0.0.1"}


def test_corrupt_model_exits_with_one_clear_line(serving_image: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.tflite").write_bytes(b"this is not a flatbuffer")
    (models / "model.tflite").chmod(0o644)
    models.chmod(0o755)
    out = subprocess.run(
        [
            "docker", "run", "--rm", "--read-only", "--cap-drop", "ALL",
            "-v", f"{models}:/mnt/models:ro", serving_image,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr, out.stderr
    assert "model.tflite" in lines[-1], lines


def test_a_one_runtime_image_refuses_another_format_in_one_line(tmp_path: Path, fp32_onnx) -> None:  # noqa: ANN001
    """The LiteRT image given an .onnx model: exit 2, one line naming the image for onnx."""
    image = require_image(serving_image_for("tflite").name)
    models = _model_dir(fp32_onnx, tmp_path / "models")
    out = subprocess.run(
        [
            "docker", "run", "--rm", "--read-only", "--cap-drop", "ALL",
            "-v", f"{models}:/mnt/models:ro", image,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    last = [ln for ln in out.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: onnxruntime is needed"), last
    assert serving_image_for("onnx").reference() in last
