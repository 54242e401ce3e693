"""OpenVINO techniques: IR candidates made, detected, evaluated; NNCF settings; planning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfedge import techniques
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.formats import detect_format

pytest.importorskip("openvino")
pytest.importorskip("nncf")

OV_TECHNIQUES = ("fp32-openvino", "openvino-fp16", "openvino-int8", "openvino-bf16")


@pytest.fixture(scope="module")
def ov_candidates(fp32_onnx: Path, sample_dataset: Path, tmp_path_factory) -> dict[str, Path]:
    """fp32-openvino, openvino-fp16 and openvino-int8 (defaults) made from the FP32 ONNX."""
    out = tmp_path_factory.mktemp("ov")
    for name in OV_TECHNIQUES:
        techniques.apply(name, fp32_onnx, sample_dataset, {}, out / name)
    return {name: out / name for name in OV_TECHNIQUES}


def test_declarations():
    for name in OV_TECHNIQUES:
        decl = techniques.get_technique(name)
        assert decl.output_format == "openvino" and decl.model_file == "model.xml"
    assert techniques.get_technique("openvino-int8").quant_mode == "int8"
    assert techniques.get_technique("openvino-int8").needs_data
    assert techniques.get_technique("openvino-fp16").quant_mode == "fp16"
    assert techniques.FAMILIES["export_fp32"]["openvino"] == "fp32-openvino"
    assert techniques.report_group("openvino-int8") == "PTQ"
    with pytest.raises(ConfigError, match="preset"):
        techniques.validate_config("openvino-int8", {"preset": "fastest"})
    with pytest.raises(ConfigError, match="isa"):
        techniques.validate_config("openvino-int8", {"isa": "riscv"})


def test_ir_candidates_are_made_detected_and_recorded(ov_candidates: dict[str, Path]):
    for name, d in ov_candidates.items():
        meta = json.loads((d / "candidate.json").read_text())
        assert (d / "model.xml").is_file() and (d / "model.bin").is_file(), name
        assert detect_format(d / "model.xml") == "openvino"
        assert meta["format"] == "openvino" and meta["model_file"] == "model.xml"
        assert meta["technique"] == name and meta["stats"]["converted_from"] == "onnx"
        ir_bytes = (d / "model.xml").stat().st_size + (d / "model.bin").stat().st_size
        assert meta["stats"]["size_bytes"] == ir_bytes  # the weights file counts
    dtypes = {
        n: json.loads((d / "candidate.json").read_text())["stats"]["weight_dtypes"]
        for n, d in ov_candidates.items()
    }
    assert "f16" not in dtypes["fp32-openvino"] and "i8" not in dtypes["fp32-openvino"]
    assert dtypes["openvino-fp16"].get("f16", 0) > 0
    assert dtypes["openvino-int8"].get("i8", 0) > 0
    int8 = json.loads((ov_candidates["openvino-int8"] / "candidate.json").read_text())["stats"]
    assert int8["op_counts"].get("FakeQuantize", 0) > 0
    # no ISA stated: some x86-64 CPU that may lack VNNI, so 7-bit weights everywhere
    assert int8["int8_settings"]["overflow_fix"] == "enable"
    sizes = {n: (d / "model.bin").stat().st_size for n, d in ov_candidates.items()}
    assert sizes["openvino-int8"] < 0.5 * sizes["fp32-openvino"]
    assert sizes["openvino-fp16"] < 0.6 * sizes["fp32-openvino"]


def test_ir_candidates_evaluate_and_int8_keeps_accuracy(
    ov_candidates: dict[str, Path], fp32_onnx: Path, sample_dataset: Path
):
    """The sample's INT8 drop stays within half a point of the FP32 model."""
    from kfedge.evaluate import evaluate

    ref = evaluate(fp32_onnx, sample_dataset, latency_runs=30, isolate=False)
    evs = {
        n: evaluate(d, sample_dataset, latency_runs=30, isolate=False)
        for n, d in ov_candidates.items()
    }
    for name, ev in evs.items():
        assert ev.format == "openvino" and ev.name == name
        assert ev.latency_ms.p50 > 0 and ev.size_bytes > 0
        assert ev.runtime.format == "openvino" and ev.runtime.version
    assert evs["fp32-openvino"].accuracy == pytest.approx(ref.accuracy, abs=1e-9)
    assert evs["openvino-fp16"].accuracy >= ref.accuracy - 0.003
    assert evs["openvino-int8"].accuracy >= ref.accuracy - 0.005
    # every IR is computed in f32 whatever the CPU; openvino-bf16 in bf16 where the CPU has it
    from kfedge.cpu import detect_isa

    bf16 = detect_isa().reduced_float == "bf16"  # OpenVINO computes bf16 on x86 BF16 CPUs only
    for name, ev in evs.items():
        want = "bf16" if name == "openvino-bf16" and bf16 else "f32"
        assert ev.runtime.precision == want, name
    assert evs["openvino-bf16"].runtime.requested_precision == "bf16"
    assert evs["openvino-bf16"].accuracy >= ref.accuracy - 0.01


def test_served_from_the_candidate_directory(ov_candidates: dict[str, Path]):
    from kfedge.serving.model import resolve_model

    assert resolve_model(ov_candidates["openvino-int8"]).name == "model.xml"


def test_keep_float_and_accuracy_control(fp32_onnx: Path, sample_dataset: Path, tmp_path: Path):
    kept = techniques.apply(
        "openvino-int8",
        fp32_onnx,
        sample_dataset,
        {"keep_float": "first_last", "calibration_samples": 32, "isa": "x86-64-avx512-vnni"},
        tmp_path / "kept",
    )
    assert len(kept.stats["kept_float"]) == 2
    assert kept.stats["int8_settings"]["overflow_fix"] == "disable"  # VNNI: 8-bit weights
    assert kept.params["keep_float"] == "first_last"
    aware = techniques.apply(
        "openvino-int8",
        fp32_onnx,
        sample_dataset,
        {"max_accuracy_drop": 0.005, "calibration_samples": 64},
        tmp_path / "aware",
    )
    top1 = aware.stats["calibration_top1"]
    assert aware.stats["accuracy_control"] is True
    assert top1["int8"] >= top1["fp32"] - 0.005 - 1e-9


def test_overflow_fix_follows_the_isa():
    from kfedge.techniques._openvino import overflow_fix

    cfg = techniques.validate_config
    assert overflow_fix(cfg("openvino-int8", {}))[0] == "enable"
    assert overflow_fix(cfg("openvino-int8", {"isa": "x86-64-avx2"}))[0] == "enable"
    assert overflow_fix(cfg("openvino-int8", {"isa": "x86-64-avx512-vnni"}))[0] == "disable"
    assert overflow_fix(cfg("openvino-int8", {"isa": "arm64"}))[0] == "disable"
    forced = cfg("openvino-int8", {"isa": "arm64", "overflow_fix": "first_layer"})
    assert overflow_fix(forced) == ("first_layer", "set by the overflow_fix parameter")


def test_refuses_what_it_cannot_convert_and_missing_calibration(fp32_onnx: Path, tmp_path: Path):
    bad = tmp_path / "model.onnx"
    bad.write_text("not a model")
    with pytest.raises(ModelFormatError):
        techniques.apply("fp32-openvino", bad, None, {}, tmp_path / "out")
    with pytest.raises(ConfigError, match="calibration"):
        techniques.check("openvino-int8", fp32_onnx, None, {})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("target", "baseline", "planned", "deployable_baseline"),
    [
        ("intel-cpu-openvino", "fp32-openvino", "openvino-int8", True),
        ("intel-npu", "fp32-openvino", "openvino-int8", False),
        ("cpu-amd64", "fp32-tflite", "openvino-int8", True),
    ],
)
def test_planning(target: str, baseline: str, planned: str, deployable_baseline: bool):
    from kfedge.provision import deployable, plan_techniques, technique_params
    from kfedge.targets import load_target

    tgt = load_target(target)
    plan = plan_techniques("auto", tgt)
    assert plan[0] == baseline and planned in plan
    assert deployable(baseline, tgt) is deployable_baseline
    params = technique_params("openvino-int8", tgt, calibration_samples=64)
    assert params == {"calibration_samples": 64, "isa": "x86-64"}


def test_openvino_first_targets_list_it_first():
    from kfedge.targets import load_target

    assert load_target("intel-cpu-openvino").formats[0] == "openvino"
    assert load_target("intel-npu").formats[0] == "openvino"
    assert "openvino" in load_target("cpu-amd64").formats
