"""kfedge on arm64, for real: runners, the model server and INT8 evaluation under qemu-user.

The candidates are made on this x86 machine, then run in a Debian 12 arm64 Python userland
(``benchmarks.emulation``) under ``qemu-aarch64-static -cpu cortex-a72`` (Raspberry Pi 4, no
int8 dot product) and ``-cpu cortex-a76`` (Raspberry Pi 5, dot product). Emulation gives real
answers (the class's instructions run) but no latency: nothing here is timed. Where an arm64
accuracy differs from x86's, that is a measured fact written into ``arm64_accuracy.json``
(and ``$KFEDGE_EMU_RESULTS`` when set), not a failure.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import emukit
import numpy as np
import pytest
from emukit import EmulatedServer, eval_inputs, run_runners_emulated
from servingkit import post, v2_body

from benchmarks import cpuclasses, emulation

REASON = emulation.available()
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"no arm64 emulation: {REASON}")]
pytest.importorskip("openvino")

CPUS = ("cortex-a72", "cortex-a76")
CLASS_OF = {"cortex-a72": "arm64-a72", "cortex-a76": "arm64-a76"}
int8_candidates = emukit.int8_candidates  # session fixtures
fp32_ir = emukit.fp32_ir


@pytest.fixture(scope="module")
def userland() -> Path:
    """The arm64 userland (built on first use on this machine; its build time is recorded)."""
    started = time.perf_counter()
    land = emulation.userland()
    print(f"arm64 userland {land}: ready in {time.perf_counter() - started:.1f} s")
    return land


@pytest.fixture(scope="module")
def models(
    fp32_tflite: Path, fp32_onnx: Path, fp32_ir: Path, int8_candidates: dict[str, Path]
) -> dict[str, Path]:
    """The model files the runner test loads: FP32 and INT8 of every format."""
    from kfedge.candidate import model_path

    found = {"fp32-tflite": fp32_tflite, "fp32-onnx": fp32_onnx, "fp32-openvino": fp32_ir}
    found.update({f"int8-{fmt}": d for fmt, d in int8_candidates.items()})
    return {name: model_path(p) for name, p in found.items()}


@pytest.mark.parametrize("cpu", CPUS)
def test_the_emulated_cpu_is_the_one_asked_for(userland: Path, cpu: str) -> None:
    facts = cpuclasses.cpu_facts_on(CLASS_OF[cpu])
    assert facts["machine"] == "aarch64"
    assert facts["cpu_model"] == cpu, facts  # MIDR_EL1's part number, read with mrs
    assert facts["dotprod"] is emulation.ARM_DOTPROD[cpu], facts  # HWCAP, not /proc/cpuinfo
    assert facts["kfedge_isa"].startswith("arm64")
    assert ("dotprod" in facts["kfedge_isa"]) is emulation.ARM_DOTPROD[cpu]


@pytest.mark.parametrize("cpu", CPUS)
def test_runners_answer_like_x86(
    userland: Path, models: dict[str, Path], sample_dataset: Path, tmp_path: Path, cpu: str
) -> None:
    """Every format's runner loads and answers on arm64 as on x86.

    FP32: within 1e-4 of x86 (float rounding order differs between NEON and AVX kernels,
    nothing more). INT8: the same top-1 class on all but one image of 16, probabilities
    within 0.1 (a few quantization steps; the integer kernels differ per ISA).
    """
    from kfedge.runners import load_runner

    x = eval_inputs(sample_dataset, 16)
    outs, info = run_runners_emulated(models, x, tmp_path, cpu)
    assert info["facts"]["machine"] == "aarch64" and info["facts"]["cpu_model"] == cpu
    for name, path in models.items():
        want = np.asarray(load_runner(path, threads=1).predict(x))
        got = outs[name]
        assert got.shape == want.shape, name
        assert np.isfinite(got).all(), name
        if name.startswith("fp32"):
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"{name} on {cpu}")
        else:
            agree = (got.argmax(-1) == want.argmax(-1)).sum()
            assert agree >= len(x) - 1, f"{name} on {cpu}: top-1 agrees on {agree}/{len(x)}"
            assert np.abs(got - want).max() <= 0.1, f"{name} on {cpu}"
        assert info["describe"][name]["format"] in ("tflite", "onnx", "openvino"), name


@pytest.mark.parametrize("cpu", CPUS)
def test_model_server_answers_v2_on_arm64(
    userland: Path,
    fp32_tflite: Path,
    fp32_onnx: Path,
    int8_candidates: dict[str, Path],
    sample_dataset: Path,
    tmp_path: Path,
    cpu: str,
) -> None:
    """``python -m kfedge.serving`` serves a .tflite, an .onnx and an IR candidate on arm64."""
    from kfedge.candidate import model_path
    from kfedge.runners import load_runner

    x = eval_inputs(sample_dataset, 2)
    served = {
        "tflite": fp32_tflite,
        "onnx": fp32_onnx,
        "openvino": int8_candidates["openvino"],
    }
    # the three start side by side (qemu start-up is mostly single-threaded emulated imports)
    with concurrent.futures.ThreadPoolExecutor(len(served)) as pool:
        starting = {
            fmt: pool.submit(EmulatedServer, model, f"m-{fmt}", tmp_path, cpu)
            for fmt, model in served.items()
        }
        concurrent.futures.wait(starting.values())
    servers = {fmt: f.result() for fmt, f in starting.items() if f.exception() is None}
    try:
        for fmt, fut in starting.items():
            assert fut.exception() is None, f"{fmt} server on {cpu}: {fut.exception()}"
        for fmt, model in served.items():
            server = servers[fmt]
            ref = load_runner(model_path(model), threads=1)
            want = np.asarray(ref.predict(x))
            status, body = post(
                f"{server.url}/v2/models/m-{fmt}/infer", v2_body(ref.inputs[0].name, x)
            )
            assert status == 200, (fmt, body, server.log_text()[-2000:])
            out = body["outputs"][0]
            got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
            assert got.shape == want.shape
            atol = 0.1 if fmt == "openvino" else 1e-4  # the IR here is the INT8 one
            np.testing.assert_allclose(got, want, atol=atol, err_msg=f"{fmt} on {cpu}")
            print(f"{fmt} server on {cpu}: ready in {server.startup_s:.1f} s")
    finally:
        for server in servers.values():
            server.stop(grace=3)


@pytest.fixture(scope="module")
def accuracy_record(tmp_path_factory) -> dict:
    """The measured accuracies, written out when the module ends (a fact, not a verdict)."""
    record: dict = {"latency": cpuclasses.LATENCY_NOTE, "classes": {}}
    yield record
    out = emukit.write_record(tmp_path_factory, "arm64_accuracy.json", record)
    print(f"arm64 accuracy record: {out}")


@pytest.mark.parametrize("cpu", CPUS)
def test_int8_evaluation_on_arm64(
    userland: Path,
    int8_candidates: dict[str, Path],
    sample_dataset: Path,
    tmp_path: Path,
    accuracy_record: dict,
    cpu: str,
) -> None:
    """Every INT8 format evaluates on arm64; the accuracy gap to x86 is recorded, not judged."""
    from kfedge.evaluate import evaluate

    class_id = CLASS_OF[cpu]
    facts = cpuclasses.cpu_facts_on(class_id)
    assert facts["cpu_model"] == cpu
    entry = accuracy_record["classes"].setdefault(class_id, {"facts": facts, "results": {}})
    for fmt, cand in int8_candidates.items():
        ev = cpuclasses.evaluate_on(class_id, cand, sample_dataset, tmp_path / f"{fmt}.json")
        assert ev["machine"]["arch"] == "aarch64", ev["machine"]
        assert ev["format"] == fmt
        assert 0.0 <= ev["accuracy"] <= 1.0 and ev["num_samples"] > 0
        x86 = evaluate(cand, sample_dataset, latency_runs=3, warmup=1, isolate=False)
        assert ev["num_samples"] == x86.num_samples
        entry["results"][fmt] = {
            "technique": cpuclasses.INT8_CANDIDATES[fmt]["technique"],
            "accuracy": ev["accuracy"],
            "x86_accuracy": x86.accuracy,
            "delta_points": round(100 * (ev["accuracy"] - x86.accuracy), 2),
            "runtime": ev["runtime"],
        }
