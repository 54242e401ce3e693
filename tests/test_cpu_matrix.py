"""The x86-64 class without VNNI, for real: this venv's Python under qemu ``-cpu Haswell``.

qemu 7.2's TCG gives Haswell AVX2 and no AVX-512 / VNNI, so ONNX Runtime and OpenVINO take their
non-VNNI int8 kernels (ONNX Runtime's add u8 x s8 pairs into a saturating int16). kfedge's
default INT8 settings are meant to be accurate there (``reduce_range`` when no ISA is stated):
that is asserted; a candidate made for a VNNI CPU is also scored and its loss recorded as a fact
(``cpu_matrix.json``; ``$KFEDGE_EMU_RESULTS`` too when set). Nothing here is timed.
"""

from __future__ import annotations

from pathlib import Path

import emukit
import pytest

from benchmarks import cpuclasses, emulation

REASON = emulation.x86_available("Haswell")
pytestmark = [pytest.mark.skipif(REASON is not None, reason=f"no x86 emulation: {REASON}")]
pytest.importorskip("openvino")

CLASS = "x86-avx2"
int8_candidates = emukit.int8_candidates  # session fixture


@pytest.fixture(scope="module")
def vnni_candidate(fp32_onnx: Path, baseline_model: Path, sample_dataset: Path, tmp_path_factory):
    """onnx-int8-static made for a VNNI CPU (8-bit weights, no reduce_range)."""
    out = tmp_path_factory.mktemp("vnni")
    made = cpuclasses.make_int8_candidates(
        baseline_model, fp32_onnx, sample_dataset, out, keys=("onnx-vnni",)
    )
    return made["onnx-vnni"]


def test_haswell_is_avx2_without_vnni():
    facts = cpuclasses.cpu_facts_on(CLASS)
    assert facts["machine"] == "x86_64" and facts["qemu_cpu"] == "Haswell"
    # CPUID as the runtimes' own probes see it, and kfedge's detection through /proc/cpuinfo
    assert facts["avx2"] and not facts["avx512f"] and not facts["vnni"], facts
    assert facts["kfedge_isa"] == "x86-64-avx2"


def test_int8_on_x86_without_vnni(
    int8_candidates: dict[str, Path], vnni_candidate: Path, sample_dataset: Path, tmp_path, record
):
    from kfedge.evaluate import evaluate

    cands = {**int8_candidates, "onnx-vnni": vnni_candidate}
    for key, cand in cands.items():
        ev = cpuclasses.evaluate_on(CLASS, cand, sample_dataset, tmp_path / f"{key}.json")
        host = evaluate(cand, sample_dataset, latency_runs=3, warmup=1, isolate=False)
        assert ev["machine"]["arch"] == "x86_64" and ev["num_samples"] == host.num_samples
        assert 0.0 <= ev["accuracy"] <= 1.0
        record[key] = {
            "technique": cpuclasses.INT8_CANDIDATES[key]["technique"],
            "params": cpuclasses.INT8_CANDIDATES[key]["params"],
            "haswell_accuracy": ev["accuracy"],
            "host_accuracy": host.accuracy,
            "delta_points": round(100 * (ev["accuracy"] - host.accuracy), 2),
        }
    # kfedge's default ONNX Runtime INT8 (no ISA stated: reduce_range) stays accurate here
    assert record["onnx"]["haswell_accuracy"] >= record["onnx"]["host_accuracy"] - 0.005, record


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """The measured accuracies, written out when the module ends (facts, not verdicts)."""
    data: dict = {"class": cpuclasses.CPU_CLASSES[CLASS], "host_isa": None, "results": {}}
    data["host_isa"] = cpuclasses.cpu_facts_on("host")["kfedge_isa"]
    yield data["results"]
    out = emukit.write_record(tmp_path_factory, "cpu_matrix.json", data)
    print(f"cpu matrix record: {out}\n{out.read_text()}")
