"""Helpers of the emulated-CPU tests (arm64, x86-64 without VNNI): candidates, runners, servers.

Import the fixtures into a test module with ``from emukit import int8_candidates, ...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servingkit import free_port, request

from benchmarks import cpuclasses, emulation

#: What the emulated Python runs for the runner comparison: every model on the same inputs.
RUNNER_SCRIPT = """
import json, sys
import numpy as np
from benchmarks.emulation import cpu_facts
from kfedge.runners import load_runner
models = json.loads(sys.argv[1])
x = np.load(sys.argv[2])
outs, described = {}, {}
for name, path in models.items():
    r = load_runner(path, threads=1)
    outs[name] = np.asarray(r.predict(x))
    described[name] = r.describe()
np.savez(sys.argv[3], **outs)
print(json.dumps({"facts": cpu_facts(), "describe": described}, default=str))
"""


@pytest.fixture(scope="session")
def int8_candidates(
    baseline_model: Path, fp32_onnx: Path, sample_dataset: Path, tmp_path_factory
) -> dict[str, Path]:
    """Format -> INT8 candidate (ptq-int8, onnx-int8-static, openvino-int8), made on x86."""
    out = tmp_path_factory.mktemp("int8")
    return cpuclasses.make_int8_candidates(baseline_model, fp32_onnx, sample_dataset, out)


@pytest.fixture(scope="session")
def fp32_ir(fp32_onnx: Path, sample_dataset: Path, tmp_path_factory) -> Path:
    """The fp32-openvino candidate (IR) of the FP32 ONNX model."""
    from kfedge import techniques

    out = tmp_path_factory.mktemp("fp32ir") / "fp32-openvino"
    techniques.apply("fp32-openvino", fp32_onnx, sample_dataset, {}, out)
    return out


def write_record(tmp_path_factory: Any, name: str, data: dict[str, Any]) -> Path:
    """Write a measured record (facts, not verdicts) as ``name`` in a temporary directory, and
    also into ``$KFEDGE_EMU_RESULTS`` when set; returns the temporary file."""
    text = json.dumps(data, indent=2) + "\n"
    out = tmp_path_factory.mktemp(name.split(".")[0]) / name
    out.write_text(text)
    extra = os.environ.get("KFEDGE_EMU_RESULTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        (Path(extra) / name).write_text(text)
    return out


def eval_inputs(dataset: Path, n: int = 16) -> np.ndarray:
    """The first ``n`` eval images of a split dataset (FP32, as the models take them)."""
    from kfedge.data import load_split

    x, _ = load_split(dataset, "eval")[:2]
    return np.ascontiguousarray(x[:n], dtype=np.float32)


def run_runners_emulated(
    models: dict[str, Path], x: np.ndarray, tmp: Path, cpu: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Predict ``x`` with every model's kfedge runner on an emulated Arm CPU.

    Returns:
        Model name -> outputs, and ``{"facts": ..., "describe": {name: runner.describe()}}``.
    """
    np.save(tmp / f"x-{cpu}.npy", x)
    out = tmp / f"y-{cpu}.npz"
    paths = {name: str(p) for name, p in models.items()}
    proc = emulation.run_python(
        ["-c", RUNNER_SCRIPT, json.dumps(paths), str(tmp / f"x-{cpu}.npy"), str(out)], cpu=cpu
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(out) as z:
        outs = {k: z[k] for k in z.files}
    return outs, json.loads(proc.stdout.strip().splitlines()[-1])


class EmulatedServer:
    """``python -m kfedge.serving`` on an emulated Arm CPU, on 127.0.0.1; ready when constructed.

    Args:
        model: Candidate directory or model file.
        name: Model name.
        tmp: Directory for the log file.
        cpu: An Arm CPU model (:data:`benchmarks.emulation.ARM_CPUS`).
        ready_timeout: Seconds to wait for ``/v2/health/ready`` (qemu starts slowly).
    """

    def __init__(
        self, model: Path, name: str, tmp: Path, cpu: str, ready_timeout: float = 300
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}-{cpu}-{self.port}.log"
        args = ["-m", "kfedge.serving", "--model_name", name, "--model_dir", str(model)]
        args += ["--http_port", str(self.port), "--host", "127.0.0.1", "--enable_grpc", "false"]
        args += ["--infer_workers", "1"]
        self._fh = self.log.open("w")
        started = time.perf_counter()
        self.proc = emulation.popen_python(
            args,
            cpu=cpu,
            env={"KFEDGE_THREADS": "1"},
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the decode pool's child with it
        )
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_text()[-3000:]}")
            try:
                if request(f"{self.url}/v2/health/ready", timeout=5)[0] == 200:
                    self.startup_s = time.perf_counter() - started
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"server not ready in {ready_timeout} s: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        """Everything the server logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL to the server's process group after ``grace`` seconds.

        Under emulation the exit waits for the decode pool's spawned child to finish booting
        (~20 s of emulated imports); the graceful stop itself is tested natively elsewhere.
        """
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this server leads
        self.proc.wait(timeout=30)
        self._fh.close()
