"""Where a model's batch-1 time goes, per operator type: ``python -m benchmarks.opprofile``.

Run in a fresh process (no TensorFlow), like every timing here. It uses each runtime's own
profiler on the file as it is:

* ONNX Runtime: ``SessionOptions.enable_profiling``; the ``Node`` events' durations (their
  ``op_name``; ``provider`` says which execution provider ran the node);
* OpenVINO: the ``PERF_COUNT`` property and ``InferRequest.profiling_info``; ``real_time`` per
  ``node_type``, and ``exec_type`` says which kernel ran (e.g. ``jit_avx2_I8`` against
  ``jit_avx2_FP32``: whether a convolution really ran in INT8).

TFLite (LiteRT) has no operator profiler in its Python API; a ``.tflite`` file gets
``{"available": false}`` with that reason.

Output: ``{"runtime", "runs", "threads", "total_ms", "ops": [{"op", "ms", "share", "count",
"kernels"}]}`` with per-run averages, the largest first.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def _input(shape: list[Any]) -> np.ndarray:
    dims = [1 if not isinstance(d, int) or d <= 0 else d for d in shape]
    dims[0] = 1
    return np.random.default_rng(0).random(dims, dtype=np.float32)


def _summary(
    runtime: str,
    per_op: dict[str, float],
    counts: dict[str, int],
    kernels: dict[str, set],
    runs: int,
    threads: int,
) -> dict[str, Any]:
    """The profile: per-run averages per operator type, the largest first."""
    total = sum(per_op.values()) or 1.0
    ops = [
        {
            "op": op,
            "ms": ms / runs,
            "share": ms / total,
            "count": counts[op] // runs,
            "kernels": sorted(kernels[op])[:4],
        }
        for op, ms in per_op.items()
    ]
    return {
        "available": True,
        "runtime": runtime,
        "runs": runs,
        "threads": threads,
        "total_ms": sum(o["ms"] for o in ops),
        "ops": sorted(ops, key=lambda o: -o["ms"]),
    }


def profile_onnx(path: str, threads: int, runs: int, warmup: int) -> dict[str, Any]:
    """ONNX Runtime's own profile of ``runs`` batch-1 runs (after ``warmup`` unprofiled)."""
    import onnxruntime as ort

    per_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    kernels: dict[str, set] = defaultdict(set)
    with tempfile.TemporaryDirectory(prefix="kfedge-prof-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = _input(list(inp.shape))
        for _ in range(warmup + runs):
            sess.run(None, {inp.name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    node = [
        e
        for e in events
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
    ]
    per_run = len(node) // (runs + warmup)
    for e in node[per_run * warmup :]:  # the warm-up runs' events come first
        op = e.get("args", {}).get("op_name", "?")
        per_op[op] += e.get("dur", 0) / 1000.0
        counts[op] += 1
        kernels[op].add(e.get("args", {}).get("provider", ""))
    return _summary(f"onnxruntime {ort.__version__}", per_op, counts, kernels, runs, threads)


def profile_openvino(path: str, threads: int, runs: int, warmup: int) -> dict[str, Any]:
    """OpenVINO's performance counters over ``runs`` batch-1 runs (after ``warmup``)."""
    import openvino as ov

    from kfedge.runners.openvino import OpenVinoRunner

    core = ov.Core()
    # batch 1 compiled static, as kfedge's runner runs it
    model = OpenVinoRunner._with_batch(core.read_model(path), 1)
    compiled = core.compile_model(
        model,
        "CPU",
        {"PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads},
    )
    req = compiled.create_infer_request()
    x = _input([d.get_length() for d in model.inputs[0].get_partial_shape()])
    for _ in range(warmup):
        req.infer({0: x})
    per_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    kernels: dict[str, set] = defaultdict(set)
    for _ in range(runs):
        req.infer({0: x})
        for info in req.profiling_info:
            if str(info.status).endswith("NOT_RUN"):
                continue
            ms = info.real_time.total_seconds() * 1000.0
            per_op[info.node_type] += ms
            counts[info.node_type] += 1
            kernels[info.node_type].add(info.exec_type)
    return _summary(f"openvino {ov.get_version()}", per_op, counts, kernels, runs, threads)


def profile(path: str, threads: int, runs: int = 50, warmup: int = 10) -> dict[str, Any]:
    """The operator profile of one model file (by its suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return profile_onnx(path, threads, runs, warmup)
    if suffix == ".xml":
        return profile_openvino(path, threads, runs, warmup)
    return {
        "available": False,
        "reason": f"no operator profiler for {suffix} files in the runtime's Python API",
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.opprofile")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", required=True)
    a = ap.parse_args(argv)
    res = profile(a.model, a.threads, a.runs, a.warmup)
    res["tensorflow_loaded"] = "tensorflow" in sys.modules
    Path(a.json).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
