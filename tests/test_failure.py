"""Failure isolation: a technique or evaluation that fails becomes a failed candidate, the run
goes on, and the run fails only when the baseline fails or no candidate could be evaluated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from timings_kit import evaluation

from kfedge.errors import InvalidInputError, ModelFormatError
from kfedge.failure import (
    FAILED_FILE,
    Failure,
    check_usable,
    one_line,
    read_evaluation_file,
    read_failed_candidate,
)


def _ev(path: Path, *args: Any, **kw: Any) -> Path:
    path.write_text(json.dumps(evaluation(*args, **kw)))
    return path


def test_one_line_reason_names_foreign_exception_types_and_fits_one_line():
    assert one_line(TypeError("x\n  y")) == "TypeError: x y"
    assert one_line(ModelFormatError("bad\nmodel")) == "bad model"  # kfedge's own message
    assert len(one_line(ValueError("z" * 1000))) == 300


def test_a_technique_that_raises_becomes_a_failed_candidate(tmp_path: Path):
    from kfedge.techniques import optimize_into

    class Art:
        path = str(tmp_path / "cand")
        metadata: dict[str, Any] = {}

    art = Art()
    # a model that does not exist: the technique raises, the step does not
    name = optimize_into(art, "ptq-int8", tmp_path / "missing.keras", None, "{}")
    assert name == "ptq-int8"
    failure = read_failed_candidate(tmp_path / "cand")
    assert failure is not None and failure.stage == "optimize"
    assert "\n" not in failure.reason and failure.reason
    assert art.metadata["failed"] == failure.reason  # shown in the KFP UI
    assert not (tmp_path / "cand" / "model.tflite").exists()
    # the named parameter names the failed candidate as it would have named the model
    art.path = str(tmp_path / "named")
    assert optimize_into(art, "ptq-int8", tmp_path / "x.keras", None, '{"name": "q8"}') == "q8"


def test_the_fp32_export_of_the_baseline_still_raises(tmp_path: Path):
    from kfedge.techniques import optimize_into

    with pytest.raises(Exception):  # noqa: B017,PT011 - whatever the export raises
        optimize_into(
            tmp_path / "o", "tflite", tmp_path / "missing.keras", None, "{}", family="export_fp32"
        )
    assert not (tmp_path / "o" / FAILED_FILE).exists()


def test_evaluate_passes_a_failed_candidate_on_and_records_its_own_failure(tmp_path: Path):
    from kfedge.evaluate import evaluate_from_files
    from kfedge.failure import write_failed_candidate

    write_failed_candidate(Failure("qat-int8", "qat-int8", "tfmot refused"), tmp_path / "c")
    out = evaluate_from_files(tmp_path / "c", tmp_path / "no-data", tmp_path / "ev.json")
    assert isinstance(out, Failure) and out.kfp_metrics() == {}
    assert read_evaluation_file(tmp_path / "ev.json") == out
    # an evaluation that raises (no such model) is recorded, not raised
    out2 = evaluate_from_files(tmp_path / "nothing", tmp_path / "no-data", tmp_path / "ev2.json")
    assert isinstance(out2, Failure) and out2.stage == "evaluate" and out2.name == "nothing"


def test_select_and_report_list_a_failed_candidate_and_go_on(tmp_path: Path):
    from kfedge.report import report_from_files
    from kfedge.select import select_from_files

    base = _ev(tmp_path / "b.json", "fp32-tflite", "fp32", 0.99, 10.0, 80_000)
    ok = _ev(tmp_path / "p.json", "ptq-int8", "ptq-int8", 0.985, 4.0, 22_000)
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps(Failure("qat-int8", "qat-int8", "tfmot: layer bn").to_dict()))
    out = select_from_files([ok, bad], base, "{}", tmp_path / "sel.json")
    assert out["selected"] == "ptq-int8"
    assert out["failed"] == [
        {
            "name": "qat-int8",
            "technique": "qat-int8",
            "stage": "optimize",
            "reason": "tfmot: layer bn",
        }
    ]
    assert "qat-int8" in out["selection_metadata"]["failed"]
    rep = report_from_files(
        [ok, bad],
        base,
        tmp_path / "sel.json",
        tmp_path / "r.json",
        tmp_path / "r.md",
        tmp_path / "r.html",
    )
    assert rep["report"]["failed"][0]["name"] == "qat-int8"
    md = (tmp_path / "r.md").read_text()
    assert "## Failed candidates" in md and "tfmot: layer bn" in md
    assert "tfmot: layer bn" in (tmp_path / "r.html").read_text()


def test_the_run_fails_only_when_the_baseline_fails_or_nothing_was_evaluated(tmp_path: Path):
    from kfedge.select import select_from_files

    f = Failure("qat-int8", "qat-int8", "boom")
    check_usable("fp32", [f], 1)  # one candidate evaluated: goes on
    with pytest.raises(InvalidInputError, match="no candidate could be evaluated"):
        check_usable("fp32", [f], 0)
    with pytest.raises(InvalidInputError, match="the baseline failed"):
        check_usable("fp32", [Failure("fp32", "fp32", "x")], 3)
    base = tmp_path / "b.json"
    base.write_text(json.dumps(Failure("fp32-tflite", "fp32", "cannot load", "evaluate").to_dict()))
    with pytest.raises(
        InvalidInputError, match="the baseline failed: fp32-tflite: failed in evaluate"
    ):
        select_from_files([], base, "{}", tmp_path / "sel.json")


def test_the_benchmark_skips_a_failed_candidate_with_its_reason(tmp_path: Path, monkeypatch):
    import kfedge.sidebyside as sbs
    from kfedge.failure import write_failed_candidate

    write_failed_candidate(Failure("qat-int8", "qat-int8", "tfmot refused"), tmp_path / "q")
    (tmp_path / "b").mkdir()
    seen: dict[str, Any] = {}

    def fake(models, x, **kw):
        seen.update(models)
        return sbs.SideBySide({}, {}, 1, 1, 1, "test", 0.0, {})

    monkeypatch.setattr(sbs, "time_side_by_side", fake)
    monkeypatch.setattr("kfedge.data.load_split", lambda *a, **k: ([[0]], None))
    monkeypatch.setattr(sbs, "save", lambda r, p: None)
    res = sbs.benchmark_from_files(
        [tmp_path / "b", tmp_path / "q"], tmp_path, tmp_path / "t.json", names=["fp32", "qat-int8"]
    )
    assert list(seen) == ["fp32"]
    assert res.skipped == {"qat-int8": "failed in optimize: tfmot refused"}
    with pytest.raises(InvalidInputError, match="the baseline failed"):
        sbs.benchmark_from_files([tmp_path / "q"], tmp_path, tmp_path / "t.json", names=["q"])


def test_a_failed_ort_preprocess_is_a_warning_the_report_shows(
    fp32_onnx: Path, sample_dataset: Path, tmp_path: Path, monkeypatch, capsys
):
    import onnxruntime.quantization as q

    from kfedge.report_table import notes
    from kfedge.techniques import apply

    def broken(*a: Any, **k: Any) -> None:
        raise AttributeError("no attribute 'graph'\nmore")

    monkeypatch.setattr(q, "quant_pre_process", broken)
    cand = apply("onnx-int8-static", fp32_onnx, sample_dataset, {}, tmp_path / "c")
    assert cand.stats["preprocessed"] is False
    (warning,) = cand.stats["warnings"]
    assert warning == (
        "quant_pre_process failed, quantized without it: AttributeError: no attribute 'graph' more"
    )
    assert warning in capsys.readouterr().err
    rows = [{"name": cand.name, "technique_warnings": cand.stats["warnings"]}]
    assert notes({"candidates": rows}) == {"Technique warnings": [f"{cand.name}: {warning}"]}


def test_the_compiled_pipelines_isolate_a_failing_loop_iteration():
    """On a KFP backend a failed ParallelFor iteration fails the DAG: the loop's steps in the
    checked-in YAML must be the library entries that record a failure instead of raising."""
    root = Path(__file__).resolve().parents[1]
    for name in ("edge-optimize", "edge-optimize-deploy", "edge-evaluate"):
        text = (root / "pipelines" / f"{name}.yaml").read_text()
        assert "evaluate_from_files(" in text, name  # records a failed evaluation
        assert "benchmark_from_files(" in text, name  # skips a failed candidate
        assert "select_from_files(" in text, name  # lists it, fails only without a baseline
        if name != "edge-evaluate":
            assert "optimize_into(candidate, technique" in text, name  # a failed candidate


def test_edge_evaluate_loop_a_model_that_cannot_be_imported_or_exported_is_a_failed_candidate(
    tmp_path: Path,
):
    from kfedge.failure import isolated
    from kfedge.reference import export_fp32_into

    def broken_import() -> str:
        raise OSError("s3://bucket/m.tflite: NoSuchKey")

    name = isolated(broken_import, tmp_path / "imported", "m", "import", "import")
    assert name == "m" and read_failed_candidate(tmp_path / "imported").stage == "import"
    # the export step of the same loop passes the failure on, evaluate records it
    out = tmp_path / "ready"
    assert export_fp32_into(out, tmp_path / "imported", keep_deployable=True) == "m"
    assert read_failed_candidate(out).reason == "OSError: s3://bucket/m.tflite: NoSuchKey"
    # a model the export cannot read is recorded, not raised
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    assert export_fp32_into(tmp_path / "ready2", bad, keep_deployable=True) == "bad"
    assert read_failed_candidate(tmp_path / "ready2").stage == "export"


def test_a_configuration_error_still_fails_the_step(tmp_path: Path):
    from kfedge.errors import ConfigError
    from kfedge.techniques import optimize_into

    with pytest.raises(ConfigError, match="target_sparsity"):
        optimize_into(tmp_path / "c", "prune", tmp_path / "m.keras", None, {"target_sparsity": 2})
    assert not (tmp_path / "c" / FAILED_FILE).exists()
