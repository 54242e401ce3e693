"""The figures candidates are compared on: per-sample correctness, Wilson + McNemar, ISA notes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from timings_kit import evaluation as ev
from timings_kit import make_timings

from kfedge.accuracy import score
from kfedge.compare import (
    accuracy_figures,
    describe_isa,
    int8_isa_note,
    latency_figures,
    measurement,
    measurement_line,
    runtime_text,
)
from kfedge.cpu import parse_isa
from kfedge.errors import InvalidInputError
from kfedge.evaluation import Evaluation, SampleCorrectness
from kfedge.ranking import rank


class _Runner:
    """A model that predicts the class written in the input's first value."""

    outputs = [SimpleNamespace(name="probs", shape=(None, 10))]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.eye(10)[x.reshape(len(x), -1)[:, 0].astype(int)]


def test_score_records_which_samples_were_right(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 45)
    guess = y.copy()
    guess[[3, 17, 40]] = (y[[3, 17, 40]] + 1) % 10  # three wrong answers
    x = np.zeros((45, 4, 4, 1), np.float32)
    x[:, 0, 0, 0] = guess
    np.savez(tmp_path / "d.npz", x=x, y=y)
    s = score(_Runner(), tmp_path / "d.npz", "eval", 8, None, 10)
    rec = s.sample_correct
    want = np.ones(45, bool)
    want[[3, 17, 40]] = False
    np.testing.assert_array_equal(rec.to_array(), want)
    assert rec.count == 45 and rec.split == "eval" and s.accuracy == pytest.approx(42 / 45)
    assert len(rec.bits) <= 4 * ((45 + 7) // 8 + 2) // 3 + 4  # packed: 6 bytes, base64
    # same labels in the same order -> same samples; another order -> not
    assert rec.same_samples(SampleCorrectness.from_arrays(want, y, "eval"))
    assert not rec.same_samples(SampleCorrectness.from_arrays(want, y[::-1], "eval"))
    # written to JSON and read back through the evaluation
    e = Evaluation.model_validate(ev("m", "t", s.accuracy, 1.0, 10, sample_correct=rec.to_dict()))
    np.testing.assert_array_equal(
        Evaluation.model_validate_json(e.to_json()).sample_correct.to_array(), want
    )
    with pytest.raises(InvalidInputError, match="expected 6 for 45 samples"):
        SampleCorrectness(count=45, bits="AAAA").to_array()


def test_wilson_and_mcnemar_against_the_baseline_known_answer():
    y = np.arange(200) % 10
    base_ok = np.ones(200, bool)
    base_ok[:4] = False  # the baseline misses 4
    cand_ok = base_ok.copy()
    cand_ok[10:22] = False  # the candidate misses 12 more, gets nothing the baseline missed
    base = Evaluation.model_validate(
        ev("fp32", "fp32", 0.98, 1.0, 10, num_samples=200,
           sample_correct=SampleCorrectness.from_arrays(base_ok, y, "eval").to_dict())
    )  # fmt: skip
    cand = Evaluation.model_validate(
        ev("int8", "ptq-int8", 0.92, 1.0, 10, num_samples=200,
           sample_correct=SampleCorrectness.from_arrays(cand_ok, y, "eval").to_dict())
    )  # fmt: skip
    a = accuracy_figures(cand, base)
    assert a["correct"] == 184 and a["samples"] == 200
    # Wilson 95 % for 184/200
    assert a["ci"] == pytest.approx([0.8740, 0.9502], abs=1e-4)
    assert a["mcnemar"] == {"a_only": 0, "b_only": 12, "p_value": pytest.approx(2 * 0.5**12)}
    assert accuracy_figures(base, base)["mcnemar"] is None
    # an old evaluation: interval from num_samples, no paired test and why
    old = Evaluation.model_validate(ev("old", "t", 0.9, 1.0, 10, num_samples=100))
    o = accuracy_figures(old, base)
    assert o["correct"] == 90 and o["mcnemar"] is None and "not recorded" in o["mcnemar_note"]
    other = Evaluation.model_validate(
        ev("other", "t", 0.92, 1.0, 10,
           sample_correct=SampleCorrectness.from_arrays(cand_ok, y[::-1], "eval").to_dict())
    )  # fmt: skip
    assert (
        accuracy_figures(other, base)["mcnemar_note"] == "scored on other samples than the baseline"
    )


@pytest.mark.parametrize(
    ("settings_isa", "reduce_range", "node_flags", "verdict"),
    [
        ("x86-64", True, ["avx2"], ": match"),
        ("x86-64-avx512-vnni", False, ["avx2"], ": MISMATCH"),
        ("x86-64-avx2", True, ["avx2", "avx512f", "avx512_vnni"], ": conservative"),
        ("arm64", False, ["asimddp"], ": match"),
    ],
)
def test_int8_settings_against_the_timing_node(settings_isa, reduce_range, node_flags, verdict):
    arch = "aarch64" if settings_isa.startswith("arm") else "x86_64"
    st = {"int8_settings": {"reduce_range": reduce_range, "isa": settings_isa, "reason": ""}}
    e = Evaluation.model_validate(ev("q", "onnx-int8-static", 0.9, 1, 10, candidate_stats=st))
    note = int8_isa_note(e, {"machine": arch, "cpu": "c", "isa": node_flags})
    assert verdict in note["text"]
    assert note["matches"] is (verdict == ": match")
    assert note["text"].startswith(f"settings for {describe_isa(parse_isa(settings_isa))}")
    assert int8_isa_note(e, None)["matches"] is None
    assert int8_isa_note(Evaluation.model_validate(ev("f", "fp32", 0.9, 1, 10)), None) is None


def test_describe_isa():
    assert describe_isa(parse_isa("x86-64-avx2")) == "x86-64 AVX2, no VNNI"
    assert describe_isa(parse_isa("x86-64-avx512-vnni")) == "x86-64 AVX-512 + VNNI"
    assert describe_isa(parse_isa("arm64-dotprod")) == "arm64 dotprod"
    assert "VNNI not assumed" in describe_isa(parse_isa("x86-64"))


def test_without_timings_every_p50_is_its_own_tier_and_the_line_says_single():
    evs = [
        Evaluation.model_validate(ev("b", "fp32", 0.9, 2.0, 10)),
        Evaluation.model_validate(ev("x", "t", 0.9, 1.0, 10)),
        Evaluation.model_validate(ev("y", "t", 0.9, 1.0, 10)),
    ]
    figs, warnings = latency_figures(evs, evs[0], None)
    assert warnings == [] and figs["x"].ratio == 0.5 and figs["x"].ratio_ci is None
    ranked = rank(["b", "x", "y"], {e.name: e for e in evs}, figs, None, "latency", 0.02)
    assert ranked.tiers == {"b": 1, "x": 0, "y": 0}
    assert "single measurements" in measurement_line(measurement(None, figs))


def test_measurement_line_names_threads_cpus_rounds_cpu_isa_and_spread():
    t = make_timings(
        {"b": 10.0, "x": 5.0},
        machine={"machine": "x86_64", "cpu": "Xeon", "isa": ["avx2", "avx512f"]},
    )
    evs = [Evaluation.model_validate(ev(n, "fp32" if n == "b" else "t", 0.9, 1, 10)) for n in "bx"]
    figs, _ = latency_figures(evs, evs[0], t)
    line = measurement_line(measurement(t, figs))
    assert (
        "8 interleaved rounds, 2 thread(s) of 2 usable CPU(s) (limited by cgroup cpu quota)" in line
    )
    assert "node CPU: Xeon (x86_64), ISA flags: avx2, avx512f" in line
    assert "run spread: ratio intervals ±" in line


def test_runtime_text():
    rt = {"providers": ["CPUExecutionProvider"], "requested_providers": ["CUDAExecutionProvider"]}
    assert runtime_text(rt) == "providers: CPUExecutionProvider (asked for CUDAExecutionProvider)"
    assert runtime_text({"delegate": None, "requested_delegate": "npu"}) == (
        "delegate: none (CPU) (asked for npu)"
    )
    assert runtime_text({}) == "CPU"


def test_too_few_rounds_are_warned():
    t = make_timings({"b": 10.0, "x": 5.0})
    evs = [Evaluation.model_validate(ev(n, "fp32" if n == "b" else "t", 0.9, 1, 10)) for n in "bx"]
    assert latency_figures(evs, evs[0], t)[1] == []
    t.rounds = 2
    [w] = latency_figures(evs, evs[0], t)[1]
    assert "too few to estimate the noise" in w
