"""Container images: size, compressed size, and time from ``docker run`` to ready.

Measured on the images ``make images`` built into the local engine (never built here: a
benchmark measures what the user gets). The compressed size is what a registry stores and an
edge device pulls: ``docker save`` streamed through gzip (level 6, as registries' layers are).
Time to ready: ``docker run`` of a serving image, hardened as the ClusterServingRuntime runs
it, until ``/v2/health/ready`` answers 200, for a ``.tflite``, an ``.onnx`` and an OpenVINO IR
candidate of the sample, each in the every-runtime image and in its one-runtime image, starts
interleaved (several each, median). What fills a one-runtime image: its largest packages.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from benchmarks.cpuclasses import _sample
from kfedge.images import (
    BASE_LABEL,
    LOCAL_BASE,
    docker_problem,
    image_catalog,
    image_present,
    serving_image_for,
)

STARTS = 5


def _gzip_size(ref: str) -> int:
    """Bytes of ``docker save REF`` after gzip level 6."""
    proc = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    total = 0
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):
        total += len(comp.compress(chunk))
    total += len(comp.flush())
    if proc.wait() != 0:
        raise RuntimeError(f"docker save {ref} failed")
    return total


def _size(ref: str) -> int:
    return int(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", ref],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time_to_ready(image: str, model_dir: Path, timeout: float = 120) -> float:
    port = _free_port()
    cmd = [
        "docker", "run", "-d", "--read-only", "--tmpfs", "/tmp:rw,size=64m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "10001:10001",
        "-v", f"{model_dir}:/mnt/models:ro", "-p", f"127.0.0.1:{port}:8080", image,
    ]  # fmt: skip
    started = time.perf_counter()
    cid = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    try:
        while time.perf_counter() - started < timeout:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v2/health/ready", timeout=2
                ) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{image} not ready in {timeout} s")
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def _largest_packages(ref: str, top: int = 8) -> list[dict[str, Any]]:
    """The ``top`` largest entries of the image's site-packages, in MB."""
    script = "du -sk /opt/kfedge/lib/python3*/site-packages/* | sort -n | tail -n " + str(top)
    out = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", ref, "-c", script],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split("\t", 1) for line in out.splitlines() if "\t" in line]
    return [{"name": Path(p).name, "mb": round(int(k) / 1024, 1)} for k, p in reversed(rows)]


def _models(work: Path) -> dict[str, Path]:
    """One model directory per format, readable by uid 10001."""
    import openvino as ov

    from kfedge.convert import convert_tflite

    _, baseline, fp32_onnx = _sample(work)
    out: dict[str, Path] = {}
    tfl = work / "tflite"
    tfl.mkdir(exist_ok=True)
    convert_tflite(baseline, tfl / "model.tflite")
    out["tflite"] = tfl
    onnx = work / "onnx"
    onnx.mkdir(exist_ok=True)
    shutil.copy2(fp32_onnx, onnx / "model.onnx")
    out["onnx"] = onnx
    ir = work / "openvino"
    ir.mkdir(exist_ok=True)
    ov.save_model(ov.convert_model(str(fp32_onnx)), str(ir / "model.xml"), compress_to_fp16=False)
    out["openvino"] = ir
    for d in [work, *out.values()]:
        d.chmod(0o755)
        for f in d.iterdir():
            if f.is_file():
                f.chmod(0o644)
    return out


def measure(work: Path, starts: int = STARTS) -> dict[str, Any]:
    """Sizes of every catalog image and the serving image's time to ready, per format.

    Raises:
        RuntimeError: No engine, or an image is not built (``make images``).
    """
    problem = docker_problem()
    if problem:
        raise RuntimeError(problem)
    work.mkdir(parents=True, exist_ok=True)
    images: dict[str, Any] = {}
    for spec in image_catalog():
        ref = spec.reference()
        labels = image_present(ref)
        if labels is None:
            raise RuntimeError(f"{ref} is not built (make images)")
        images[spec.name] = {
            "ref": ref,
            "size_bytes": _size(ref),
            "gzip_bytes": _gzip_size(ref),
            "base": labels.get(BASE_LABEL, "").split("@")[0],
            "tensorflow": spec.tensorflow,
            "formats": list(spec.formats),
        }
        if len(spec.formats) == 1:
            images[spec.name]["largest_packages"] = _largest_packages(ref)
    base = (
        {"ref": LOCAL_BASE, "size_bytes": _size(LOCAL_BASE)}
        if image_present(LOCAL_BASE) is not None
        else None
    )
    ready: dict[str, Any] = {}
    for fmt, model_dir in _models(work / "models").items():
        pair = {"serving": images["serving"]["ref"], "one": serving_image_for(fmt).reference()}
        runs: dict[str, list[float]] = {k: [] for k in pair}
        for _ in range(starts):  # interleaved: a drift in the machine hits both alike
            for key, ref in pair.items():
                runs[key].append(round(_time_to_ready(ref, model_dir), 3))
        ready[fmt] = {
            key: {"ref": pair[key], "runs_s": r, "median_s": round(statistics.median(r), 3)}
            for key, r in runs.items()
        }
    version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    return {"engine": f"Docker {version}", "images": images, "base": base, "ready": ready}
