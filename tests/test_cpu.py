"""The CPU instruction set and the ONNX Runtime INT8 settings chosen for it."""

from __future__ import annotations

import pytest

from kfedge.cpu import (
    Isa,
    detect_isa,
    isa_from_cpuinfo,
    ort_int8_settings,
    parse_isa,
    target_isa,
)
from kfedge.errors import ConfigError

EPYC_AVX2 = "processor : 0\nmodel name : AMD EPYC\nflags : fpu sse4_1 avx avx2 fma\n"
ICELAKE = "flags\t\t: sse4_1 avx2 avx512f avx512bw avx512_vnni\n"
GRAVITON2 = "processor : 0\nFeatures : fp asimd crc32 atomics asimddp\n"
ZEN4 = "flags : avx2 avx512f avx512_vnni avx512_bf16\n"
CORTEX_A76 = "processor : 0\nFeatures : fp asimd evtstrm aes crc32 atomics fphp asimdhp asimddp\n"
CORTEX_A72 = "processor : 0\nFeatures : fp asimd evtstrm crc32 cpuid\n"


@pytest.mark.parametrize(
    ("text", "machine", "reduced"),
    [
        (ZEN4, "x86_64", "bf16"),
        (ICELAKE, "x86_64", None),
        (CORTEX_A76, "aarch64", "f16"),
        (CORTEX_A72, "aarch64", None),
    ],
)
def test_reduced_float_names_what_openvino_would_pick_unasked(text, machine, reduced):
    assert isa_from_cpuinfo(text, machine).reduced_float == reduced


@pytest.mark.parametrize(
    ("text", "machine", "name", "vnni"),
    [
        (EPYC_AVX2, "x86_64", "x86-64-avx2", False),
        (ICELAKE, "x86_64", "x86-64-avx2-avx512-vnni", True),
        (GRAVITON2, "aarch64", "arm64-dotprod", False),
        (ZEN4, "x86_64", "x86-64-avx2-avx512-vnni-bf16", True),
        (CORTEX_A76, "aarch64", "arm64-dotprod-fp16", False),
        ("", "AMD64", "x86-64", False),
    ],
)
def test_isa_from_cpuinfo(text: str, machine: str, name: str, vnni: bool):
    isa = isa_from_cpuinfo(text, machine)
    assert isa.name == name and isa.vnni is vnni
    assert parse_isa(name) == isa


def test_host_isa_is_detected():
    assert detect_isa().arch in ("x86-64", "arm64")
    assert parse_isa("host") == detect_isa()


def test_bad_isa_names_are_refused():
    with pytest.raises(ConfigError, match="unknown extension.*sse"):
        parse_isa("x86-64-sse")
    with pytest.raises(ConfigError, match="expected 'host' or an architecture"):
        parse_isa("riscv64")


def test_reduce_range_unless_vnni_is_known():
    """7-bit weights wherever U8S8 may run on VPMADDUBSW (x86 without VNNI or not known)."""
    assert ort_int8_settings(None).reduce_range is True  # any x86-64 CPU
    assert ort_int8_settings(Isa("x86-64")).reduce_range is True
    assert ort_int8_settings(parse_isa("x86-64-avx2")).reduce_range is True
    assert ort_int8_settings(parse_isa("x86-64-avx512")).reduce_range is True
    assert ort_int8_settings(parse_isa("x86-64-avx512-vnni")).reduce_range is False
    assert ort_int8_settings(parse_isa("arm64")).reduce_range is False
    assert ort_int8_settings(None, weight_type="uint8").reduce_range is False  # U8U8
    assert "VPMADDUBSW" in ort_int8_settings(None).reason


def test_targets_state_their_isa_and_provision_passes_it():
    from kfedge.provision import technique_params
    from kfedge.targets import Target, load_target
    from kfedge.techniques import validate_config
    from kfedge.techniques._onnx import int8_settings

    amd64, arm64 = load_target("cpu-amd64"), load_target("cpu-arm64")
    assert target_isa(amd64).name == "x86-64" and target_isa(arm64).name == "arm64"
    vnni = Target(**{**amd64.model_dump(), "isa": "x86-64-avx512-vnni"})
    assert technique_params("onnx-int8-static", amd64)["isa"] == "x86-64"
    assert technique_params("onnx-int8-static", vnni)["isa"] == "x86-64-avx512-vnni"
    assert technique_params("onnx-int8-dynamic", arm64)["isa"] == "arm64"
    assert "isa" not in technique_params("ptq-int8", amd64)
    for target, reduce in ((amd64, True), (vnni, False), (arm64, False)):
        cfg = validate_config("onnx-int8-static", technique_params("onnx-int8-static", target))
        assert int8_settings(cfg).reduce_range is reduce, target.name
    cfg = validate_config("onnx-int8-static", {"isa": "x86-64-avx2", "reduce_range": False})
    assert int8_settings(cfg).reduce_range is False  # an explicit setting wins
    with pytest.raises(ConfigError, match="isa"):
        validate_config("onnx-int8-static", {"isa": "x86-64-sse"})
    with pytest.raises(ValueError, match="contradicts arch"):
        Target(**{**amd64.model_dump(), "isa": "arm64-dotprod"})
