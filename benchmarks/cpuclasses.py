"""INT8 accuracy of every format per CPU class: this x86 host, x86-64 AVX2 without VNNI, arm64.

The INT8 candidates (``ptq-int8`` TFLite, ``onnx-int8-static`` ONNX, ``openvino-int8`` IR) are
made once on this machine with kfedge's own techniques, then each is scored on the sample's
eval split by ``python -m kfedge.evaluate --no-isolate`` on every CPU class:

* ``host``: this machine, natively (its ISA is stated: :func:`kfedge.cpu.detect_isa`);
* ``x86-avx2``: this venv's Python under ``qemu-x86_64-static -cpu Haswell`` (AVX2, no
  AVX-512, no VNNI: the saturating ``VPMADDUBSW`` kernels);
* ``arm64-a72``: the arm64 userland under ``qemu-aarch64-static -cpu cortex-a72``
  (Raspberry Pi 4; no int8 dot product);
* ``arm64-a76``: the same under ``-cpu cortex-a76`` (Raspberry Pi 5; int8 dot product).

One more candidate shows why the class matters: ``onnx-int8-static`` made for a VNNI CPU
(full 8-bit weights) loses points on x86 without VNNI, where ONNX Runtime's int8 kernels add
pairs of products into a saturating int16 (the figures: BENCHMARKS.md, section 10).

Emulated CPUs execute the real instructions of their class, so accuracy is the class's; their
latency is not (qemu's translation is slower and not in proportion), so no latency is recorded:
latency only on real hardware. :func:`measure` returns the JSON-able section;
``benchmarks.render_cpuclasses.render_cpu_classes`` turns it into Markdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import emulation

#: The INT8 candidates: the default INT8 technique of each format, plus ONNX Runtime's made for
#: a VNNI CPU (``isa: x86-64-avx512-vnni``: full 8-bit weights, no ``reduce_range``), which shows
#: the saturating int16 kernels of x86 CPUs without VNNI.
INT8_CANDIDATES: dict[str, dict[str, Any]] = {
    "tflite": {
        "technique": "ptq-int8",
        "source": "baseline",
        "params": {},
        "format": "tflite",
        "label": "TFLite (LiteRT) `ptq-int8`",
    },
    "onnx": {
        "technique": "onnx-int8-static",
        "source": "fp32_onnx",
        "params": {},
        "format": "onnx",
        "label": "ONNX Runtime `onnx-int8-static`",
    },
    "openvino": {
        "technique": "openvino-int8",
        "source": "fp32_onnx",
        "params": {},
        "format": "openvino",
        "label": "OpenVINO IR `openvino-int8`",
    },
    "onnx-vnni": {
        "technique": "onnx-int8-static",
        "source": "fp32_onnx",
        "params": {"isa": "x86-64-avx512-vnni"},
        "format": "onnx",
        "label": "ONNX Runtime `onnx-int8-static` made for VNNI (8-bit weights)",
    },
}
#: The default INT8 candidates (one per format).
DEFAULT_INT8 = ("tflite", "onnx", "openvino")
#: The CPU classes: id -> how it runs (``host``, ``x86`` or ``arm64``), qemu CPU model, label.
CPU_CLASSES: dict[str, dict[str, str]] = {
    "host": {"kind": "host", "cpu": "", "label": "x86-64 host (native)"},
    "x86-avx2": {
        "kind": "x86",
        "cpu": "Haswell",
        "label": "x86-64 AVX2 without VNNI (qemu Haswell)",
    },
    "arm64-a72": {
        "kind": "arm64",
        "cpu": "cortex-a72",
        "label": "arm64 Cortex-A72, Raspberry Pi 4 (qemu)",
    },
    "arm64-a76": {
        "kind": "arm64",
        "cpu": "cortex-a76",
        "label": "arm64 Cortex-A76, Raspberry Pi 5 (qemu)",
    },
}
LATENCY_NOTE = "latency: only on real hardware; emulated CPUs give no latency"
#: Few timed runs: evaluate always times, and under emulation the figure means nothing.
EMULATED_TIMING_ARGS = ("--runs", "3", "--warmup", "1", "--time-budget", "1")


def make_int8_candidates(
    baseline_model: Path,
    fp32_onnx: Path,
    dataset: Path,
    out: Path,
    keys: Sequence[str] = DEFAULT_INT8,
) -> dict[str, Path]:
    """Make INT8 candidates with kfedge's techniques (on this machine).

    Args:
        baseline_model: The trained Keras model (``ptq-int8`` starts from it).
        fp32_onnx: Its FP32 ONNX export, a file or candidate (ONNX and OpenVINO start from it).
        dataset: The split dataset directory (calibration).
        out: Where the candidate directories go (``out/<key>``).
        keys: Which :data:`INT8_CANDIDATES` (default: one per format).

    Returns:
        Key -> candidate directory.
    """
    from kfedge import techniques

    sources = {"baseline": baseline_model, "fp32_onnx": fp32_onnx}
    made: dict[str, Path] = {}
    for key in keys:
        spec = INT8_CANDIDATES[key]
        target = out / key
        if not (target / "candidate.json").is_file():
            techniques.apply(
                spec["technique"], sources[spec["source"]], dataset, spec["params"], target
            )
        made[key] = target
    return made


def unavailable(class_id: str) -> str | None:
    """Why a CPU class cannot run here (None: it can)."""
    spec = CPU_CLASSES[class_id]
    if spec["kind"] == "arm64":
        return emulation.available()
    if spec["kind"] == "x86":
        return emulation.x86_available(spec["cpu"])
    return None


def run_on(
    class_id: str, args: Sequence[str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` on a CPU class (natively, or under its emulation).

    Args:
        class_id: A :data:`CPU_CLASSES` id.
        args: Python's arguments.
        timeout: Seconds before the run is killed.

    Returns:
        The completed process (text output captured).
    """
    spec = CPU_CLASSES[class_id]
    if spec["kind"] == "arm64":
        return emulation.run_python(args, cpu=spec["cpu"], timeout=timeout)
    if spec["kind"] == "x86":
        return emulation.run_x86_python(args, cpu=spec["cpu"], timeout=timeout)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def cpu_facts_on(class_id: str) -> dict[str, Any]:
    """:func:`benchmarks.emulation.cpu_facts` as seen on a CPU class."""
    proc = run_on(class_id, ["-m", "benchmarks.emulation", "facts"], timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"cpu facts on {class_id} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evaluate_on(
    class_id: str, candidate: Path, dataset: Path, out_json: Path, timeout: float = 900
) -> dict[str, Any]:
    """Score a candidate with ``python -m kfedge.evaluate --no-isolate`` on a CPU class.

    Args:
        class_id: A :data:`CPU_CLASSES` id.
        candidate: The candidate directory.
        dataset: The split dataset directory.
        out_json: Where the evaluation JSON is written.
        timeout: Seconds before the run is killed.

    Returns:
        The evaluation (the JSON kfedge wrote).

    Raises:
        RuntimeError: The evaluation failed (its output's tail is in the message).
    """
    args = ["-m", "kfedge.evaluate", str(candidate), str(dataset), "--no-isolate"]
    args += ["--json", str(out_json), *EMULATED_TIMING_ARGS]
    proc = run_on(class_id, args, timeout=timeout)
    if proc.returncode != 0 or not out_json.is_file():
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"kfedge.evaluate on {class_id} exited {proc.returncode}:\n{tail}")
    return json.loads(out_json.read_text())


def _sample(work: Path) -> tuple[Path, Path, Path]:
    """The built-in sample: dataset, trained baseline, FP32 ONNX (made under ``work``)."""
    from kfedge.convert import convert_onnx
    from kfedge.data import prepare_dataset
    from kfedge.sample import train_sample_baseline

    dataset = work / "dataset"
    if not dataset.is_dir():
        prepare_dataset("sample://digits", dataset, [32, 32, 1], 10)
    baseline = work / "baseline.keras"
    if not baseline.is_file():
        train_sample_baseline(dataset, baseline)
    fp32 = work / "fp32.onnx"
    if not fp32.is_file():
        convert_onnx(baseline, fp32)
    return dataset, baseline, fp32


def measure(
    work: Path | None = None,
    classes: Sequence[str] = tuple(CPU_CLASSES),
    candidates: dict[str, Path] | None = None,
    dataset: Path | None = None,
) -> dict[str, Any]:
    """Measure the INT8 sample accuracy of every format on every CPU class.

    Args:
        work: Working directory (default: a temporary one, removed afterwards).
        classes: The :data:`CPU_CLASSES` ids to measure (an unavailable one is recorded with
            its reason, not measured).
        candidates: :data:`INT8_CANDIDATES` key -> candidate directory (default: all of them,
            made from the sample here).
        dataset: The split dataset of ``candidates`` (required with them).

    Returns:
        A JSON-able dict: ``candidates`` (key -> technique, params, format, label),
        ``classes`` (id -> label, kind, qemu CPU model, ``emulated``, ``facts``
        (:func:`cpu_facts_on`), ``unavailable`` reason or ``results``: key -> accuracy,
        samples, the runtime's machine arch and version, ``delta_vs_host_points``, or
        ``error``), ``userland`` (the arm64 userland's
        build seconds and key wheel versions), ``latency`` (:data:`LATENCY_NOTE`) and
        ``seconds`` (per class).
    """
    if work is None:
        with tempfile.TemporaryDirectory(prefix="kfedge-cpuclasses-") as tmp:
            return measure(Path(tmp), classes, candidates, dataset)
    work.mkdir(parents=True, exist_ok=True)
    if candidates is None:
        dataset, baseline, fp32 = _sample(work)
        candidates = make_int8_candidates(
            baseline, fp32, dataset, work / "candidates", tuple(INT8_CANDIDATES)
        )
    if dataset is None:
        raise ValueError("measure(candidates=...) needs the dataset they were made for")
    out: dict[str, Any] = {
        "candidates": {
            key: {k: v for k, v in INT8_CANDIDATES[key].items() if k != "source"}
            for key in candidates
        },
        "classes": {},
        "latency": LATENCY_NOTE,
        "seconds": {},
    }
    for class_id in classes:
        spec = CPU_CLASSES[class_id]
        entry: dict[str, Any] = {
            "label": spec["label"],
            "kind": spec["kind"],
            "cpu": spec["cpu"],
            "emulated": spec["kind"] != "host",
        }
        out["classes"][class_id] = entry
        reason = unavailable(class_id)
        if reason:
            entry["unavailable"] = reason
            continue
        started = time.perf_counter()
        entry["facts"] = cpu_facts_on(class_id)
        results: dict[str, Any] = {}
        for fmt, cand in candidates.items():
            try:
                ev = evaluate_on(class_id, cand, dataset, work / f"{class_id}-{fmt}.json")
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results[fmt] = {"error": str(exc)[-1500:]}
                continue
            results[fmt] = {
                "accuracy": ev["accuracy"],
                "num_samples": ev.get("num_samples"),
                "arch": (ev.get("machine") or {}).get("arch"),
                "runtime": (ev.get("runtime") or {}).get("version"),
            }
        entry["results"] = results
        out["seconds"][class_id] = round(time.perf_counter() - started, 1)
    host = out["classes"].get("host", {}).get("results", {})
    for entry in out["classes"].values():
        for fmt, res in entry.get("results", {}).items():
            ref = host.get(fmt, {}).get("accuracy")
            if "accuracy" in res and ref is not None:
                res["delta_vs_host_points"] = round(100 * (res["accuracy"] - ref), 2)
    if any(CPU_CLASSES[c]["kind"] == "arm64" for c in classes) and not emulation.available():
        built = emulation.manifest()
        keep = ("numpy", "onnxruntime", "ai-edge-litert", "openvino", "kserve")
        out["userland"] = {
            "debian": built["suite"],
            "build_s": built["build_s"],
            "wheels": {k: v for k, v in built["wheels"].items() if k in keep},
            "from_debian": built["from_debian"],
        }
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
