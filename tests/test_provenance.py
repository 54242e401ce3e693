"""Where latency was measured: the report says when it was not the target's CPU."""

from __future__ import annotations

from typing import Any

import pytest

from kfedge.provenance import MARK, provenance, same_class
from kfedge.report import make_report, print_summary
from kfedge.report_html import render_html
from kfedge.report_md import render_markdown
from kfedge.targets import Target, load_target

X86_VNNI = {"machine": "x86_64", "cpu": "AMD EPYC", "isa": ["avx2", "avx512f", "avx512_vnni"]}
ARM_A76 = {"machine": "aarch64", "cpu": "Cortex-A76", "isa": ["asimddp", "asimdhp"]}


def _ev(name: str, p50: float, machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "technique": name,
        "format": "tflite",
        "accuracy": 0.9,
        "latency_ms": {"p50": p50, "p90": p50, "p99": p50, "mean": p50, "runs": 10},
        "size_bytes": 1000,
        "machine": {"arch": machine["machine"], "cpu": machine["cpu"], "cpu_count": 4},
        "runtime": {"format": "tflite", "precision": "f32"},
    }


def test_an_arm64_target_measured_on_x86_is_flagged():
    where = provenance("cpu-arm64", X86_VNNI)
    assert where["on_target"] is False and where["target_arch"] == "arm64"
    assert where["measured_isa"] == "x86-64-avx2-avx512-vnni"
    assert "Not measured on the target's hardware" in where["note"]
    assert provenance("cpu-arm64", ARM_A76)["on_target"] is True


def test_a_stated_cpu_class_must_match_its_int8_instructions():
    amd64 = load_target("cpu-amd64")
    avx2 = Target(**{**amd64.model_dump(), "isa": "x86-64-avx2"})
    vnni = Target(**{**amd64.model_dump(), "isa": "x86-64-avx512-vnni"})
    assert provenance(avx2, X86_VNNI)["on_target"] is False  # VNNI here, not on the nodes
    assert "CPU class" in provenance(avx2, X86_VNNI)["note"]
    assert provenance(vnni, X86_VNNI)["on_target"] is True
    assert provenance(amd64, X86_VNNI)["on_target"] is True  # no class stated: the arch decides
    from kfedge.cpu import parse_isa

    assert not same_class(parse_isa("arm64-dotprod"), parse_isa("arm64"))  # A76 vs A72


@pytest.mark.parametrize("target", [None, "no-such-target"])
def test_unknown_sides_say_nothing(target):
    where = provenance(target, X86_VNNI)
    assert where["on_target"] is None and where["note"] == ""
    assert provenance("cpu-arm64", None)["on_target"] is None


def test_a_record_without_isa_flags_leaves_the_cpu_class_unknown():
    # an evaluation's machine record names the architecture, not the flags
    vnni = Target(**{**load_target("cpu-amd64").model_dump(), "isa": "x86-64-avx512-vnni"})
    evaluation_machine = {"arch": "x86_64", "cpu": "AMD EPYC"}
    where = provenance(vnni, evaluation_machine)
    assert where["on_target"] is None and where["note"] == ""
    assert where["measured_isa"] == "x86-64"
    assert provenance("cpu-arm64", evaluation_machine)["on_target"] is False  # the arch differs


def test_report_says_it_at_the_top_beside_every_latency_and_in_the_selection():
    evs = [_ev("fp32-tflite", 10.0, X86_VNNI), _ev("ptq-int8", 5.0, X86_VNNI)]
    sel = {"selected": "ptq-int8", "baseline": "fp32-tflite", "reason": "fastest"}
    rep = make_report(evs, "fp32-tflite", None, target="cpu-arm64")
    assert rep["provenance"]["on_target"] is False
    md = render_markdown(rep, sel)
    top = md.split("## Selection")[0]
    assert "Not measured on the target's hardware" in top
    table = [ln for ln in md.splitlines() if ln.startswith("| ptq-int8")][0]
    assert table.count(MARK) == 4  # baseline p50, p50, p90, p99
    assert "tflite, f32" in table  # the precision the runtime computed in
    assert "the choice by latency is not the target's" in md.split("## Selection")[1]
    assert 'id="provenance"' in render_html(rep, sel)
    assert "Not measured on the target's hardware" in print_summary(rep)
    on = make_report(
        [_ev("fp32-tflite", 10.0, ARM_A76), _ev("ptq-int8", 5.0, ARM_A76)],
        "fp32-tflite",
        None,
        target="cpu-arm64",
    )
    md = render_markdown(on, sel)
    assert MARK not in md.split("## Candidates")[1].split("\n\n", 2)[2].split("##")[0]
    assert "Not measured" not in md
