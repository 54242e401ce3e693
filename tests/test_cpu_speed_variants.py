"""CPU speed variants as technique parameters, and the bounded tuning search.

Speed itself is measured by the benchmark step on the target, never asserted here: these
tests check that each variant is made as declared, stays accurate, and that the search keeps
its bounds (variants, budget, early stop, accuracy rescue) and picks by what it measured.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from kfedge import techniques
from kfedge.errors import ConfigError


def _ops(cand: Any) -> dict[str, int]:
    return cand.stats["op_counts"]


@pytest.fixture(scope="module")
def variants(fp32_onnx: Path, sample_dataset: Path, tmp_path_factory) -> dict[str, Any]:
    """onnx-int8-static variants: name -> (candidate, directory)."""
    out = tmp_path_factory.mktemp("ort-variants")
    params = {
        "qdq": {},
        "qoperator": {"quant_format": "qoperator"},
        "keep": {"keep_float": "first_last"},
        "extended": {"optimize": "extended"},
        "percentile": {"calibrate_method": "percentile", "calibration_samples": 40},
    }
    return {
        k: (techniques.apply("onnx-int8-static", fp32_onnx, sample_dataset, p, out / k), out / k)
        for k, p in params.items()
    }


def test_ort_variants_are_made_as_declared(variants: dict[str, Any]):
    c = {k: v[0] for k, v in variants.items()}
    assert _ops(c["qdq"]).get("QuantizeLinear", 0) > 0
    assert "QLinearConv" not in _ops(c["qdq"])
    assert _ops(c["qoperator"]).get("QLinearConv", 0) > 0
    assert c["qoperator"].stats["quant_format"] == "qoperator"
    kept = c["keep"].stats["kept_float"]
    assert len(kept) == 2 and c["qdq"].stats["kept_float"] == []
    # the kept layers' weights stay float: fewer DequantizeLinear nodes
    assert _ops(c["keep"])["DequantizeLinear"] < _ops(c["qdq"])["DequantizeLinear"]
    opt = c["extended"].stats["offline_optimization"]
    assert opt["level"] == "extended" and opt["onnxruntime"]
    assert _ops(c["extended"]).get("QLinearConv", 0) > 0  # fused offline
    # percentile calibration (ORT's histogram collector) works with a short last batch
    assert c["percentile"].stats["calibration_samples"] == 40


def test_ort_variants_stay_accurate(variants: dict[str, Any], fp32_onnx: Path, sample_dataset):
    from kfedge.evaluate import evaluate

    ref = evaluate(fp32_onnx, sample_dataset, latency_runs=30, isolate=False).accuracy
    for name, (_, d) in variants.items():
        acc = evaluate(d, sample_dataset, latency_runs=30, isolate=False).accuracy
        assert acc >= ref - 0.01, (name, acc, ref)


def test_offline_level_all_is_refused():
    with pytest.raises(ConfigError, match="optimize"):
        techniques.validate_config("onnx-int8-static", {"optimize": "all"})


# -- the tuning search -----------------------------------------------------------------------
def test_tune_declarations():
    onnx = techniques.get_technique("tune-onnx-int8")
    vino = techniques.get_technique("tune-openvino-int8")
    assert (onnx.output_format, onnx.model_file, onnx.quant_mode) == ("onnx", "model.onnx", "int8")
    assert (vino.output_format, vino.model_file) == ("openvino", "model.xml")
    cfg = techniques.validate_config("tune-onnx-int8", {})
    avx2 = techniques.validate_config("tune-onnx-int8", {"isa": "x86-64-avx2"})
    vnni = techniques.validate_config("tune-onnx-int8", {"isa": "x86-64-avx512-vnni"})
    assert {"weight_type": "uint8"} in onnx.variants(avx2)
    assert {"weight_type": "uint8"} not in onnx.variants(vnni)
    assert onnx.variants(cfg)[0] == {}  # the defaults first
    assert {"keep_float": "first_last"} in onnx.rescues(cfg)


def _fake_checks(monkeypatch: pytest.MonkeyPatch, accuracy: dict, ratio: dict) -> list:
    """Replace the accuracy and quick latency checks by figures keyed on the variant's params."""
    from kfedge.techniques import _tune

    seen: list[dict] = []
    real_accuracy = _tune._Search.accuracy

    def fake_accuracy(self, model: Path) -> float:
        if model == self.ref:
            return real_accuracy(self, model)
        params = json.loads((model.parent / "candidate.json").read_text())["params"]
        seen.append(params)
        return self.ref_accuracy - accuracy.get(_key(params), 0.0)

    def fake_ratio(self, model: Path) -> dict:
        params = json.loads((model.parent / "candidate.json").read_text())["params"]
        r = ratio.get(_key(params), 0.9)
        return {"ratio": r, "ratio_ci": [r * 0.95, r * 1.05], "p50_ms": r, "fp32_p50_ms": 1.0}

    monkeypatch.setattr(_tune._Search, "accuracy", fake_accuracy)
    monkeypatch.setattr(_tune._Search, "quick_ratio", fake_ratio)
    return seen


def _key(params: dict) -> str:
    for k in ("quant_format", "per_channel", "optimize", "weight_type", "keep_float"):
        default = {"quant_format": "qdq", "per_channel": True, "optimize": "none"}.get(k)
        if k in params and params[k] != default and params[k] not in ("none", "int8"):
            return f"{k}={params[k]}"
    return "default"


def test_tune_picks_the_fastest_accurate_variant_within_max_variants(
    fp32_onnx: Path, sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _fake_checks(
        monkeypatch,
        accuracy={"per_channel=False": 0.05},  # fastest, but inaccurate
        ratio={"default": 0.9, "quant_format=qoperator": 0.8, "per_channel=False": 0.5},
    )
    cand = techniques.apply(
        "tune-onnx-int8",
        fp32_onnx,
        sample_dataset,
        {"max_variants": 3, "stop_ratio": 0.3, "calibration_samples": 32},
        tmp_path / "tuned",
    )
    search = cand.stats["search"]
    assert len(search) == 3  # bounded
    assert [e["accurate"] for e in search[:2]] == [True, True]
    assert cand.stats["chosen_params"] == {"quant_format": "qoperator"}
    assert cand.stats["quant_format"] == "qoperator"
    assert cand.stats["stopped"].startswith("max_variants")
    assert (tmp_path / "tuned" / "model.onnx").is_file()
    assert _ops(cand).get("QLinearConv", 0) > 0  # the chosen variant's file is the candidate's
    assert cand.stats["quick_check"]["host_isa"]


def test_tune_stops_early_when_a_variant_is_accurate_and_clearly_fast(
    fp32_onnx: Path, sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _fake_checks(monkeypatch, accuracy={}, ratio={"default": 0.9, "quant_format=qoperator": 0.4})
    cand = techniques.apply(
        "tune-onnx-int8",
        fp32_onnx,
        sample_dataset,
        {"stop_ratio": 0.6, "calibration_samples": 32},
        tmp_path / "tuned",
    )
    assert len(cand.stats["search"]) == 2
    assert cand.stats["stopped"].startswith("early stop")
    assert cand.stats["chosen_params"] == {"quant_format": "qoperator"}


def test_tune_rescues_accuracy_with_float_layers(
    fp32_onnx: Path, sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    seen = _fake_checks(
        monkeypatch, accuracy={"default": 0.05}, ratio={"keep_float=first_last": 0.7}
    )
    cand = techniques.apply(
        "tune-onnx-int8",
        fp32_onnx,
        sample_dataset,
        {"max_variants": 2, "calibration_samples": 32},
        tmp_path / "tuned",
    )
    assert seen[1].get("keep_float") == "first_last"  # tried right after the inaccurate one
    assert cand.stats["chosen_params"] == {"keep_float": "first_last"}
    assert len(cand.stats["kept_float"]) == 2


def test_tune_keeps_its_time_budget(
    fp32_onnx: Path, sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from kfedge.techniques import _tune

    _fake_checks(monkeypatch, accuracy={}, ratio={})
    clock = itertools.count(0, 4.0)  # every reading of the clock: 4 s later
    monkeypatch.setattr(_tune.time, "perf_counter", lambda: next(clock))
    cand = techniques.apply(
        "tune-onnx-int8",
        fp32_onnx,
        sample_dataset,
        {"budget_s": 10, "calibration_samples": 32},
        tmp_path / "tuned",
    )
    assert len(cand.stats["search"]) < 6
    assert cand.stats["stopped"] == "time budget (10 s)"


@pytest.mark.slow
def test_tune_runs_for_real_on_the_sample(fp32_onnx: Path, sample_dataset: Path, tmp_path: Path):
    """Real accuracy checks and quick side-by-side timings (figures not asserted: shared CPUs)."""
    cand = techniques.apply(
        "tune-openvino-int8",
        fp32_onnx,
        sample_dataset,
        {"calibration_samples": 64, "rounds": 2, "round_budget_s": 0.05},
        tmp_path / "tuned",
    )
    first = cand.stats["search"][0]
    assert first["params"] == {} and "accuracy" in first
    if first["accurate"]:
        assert first["ratio"] > 0 and first["ratio_ci"][0] <= first["ratio"]
    assert cand.format == "openvino" and (tmp_path / "tuned" / "model.bin").is_file()
    assert cand.stats["search_seconds"] > 0
