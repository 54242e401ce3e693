"""Goal-driven selection: each goal type, the baseline rules, the no-candidate case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from timings_kit import evaluation

from kfedge.errors import ConfigError, InvalidInputError, NotFoundError
from kfedge.evaluation import Evaluation, OutputsSample
from kfedge.formats import DEPLOYABLE
from kfedge.select import Goals, find_baseline, parse_goals, select, select_from_files


def ev(*args: Any, threads: int = 2, **kw: Any) -> Evaluation:
    """An :class:`Evaluation` from :func:`timings_kit.evaluation`'s arguments (no ``runs``)."""
    d = {**evaluation(*args, **kw), "threads": threads}
    d["latency_ms"].pop("runs")
    return Evaluation.model_validate(d)


@pytest.fixture
def evals() -> list[Evaluation]:
    return [
        ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        ev("ptq-int8", "ptq-int8", 0.970, 4.0, 22_000),  # fast, -2.0 pts
        ev("ptq-fp16", "ptq-fp16", 0.989, 9.0, 41_000),  # -0.1 pts, 0.9x
        ev("ort-int8", "ort-static-int8", 0.985, 13.0, 23_000, fmt="onnx"),  # slower than fp32
    ]


def failed(res: dict[str, Any], name: str) -> list[str]:
    return next(c for c in res["candidates"] if c["name"] == name)["failed_goals"]


def test_absolute_accuracy_drop(evals):
    res = select(evals, {"max_accuracy_drop": 0.01})
    assert res["selected"] == "ptq-fp16"  # int8 is faster but loses 2 points
    assert res["deploy"] is True
    assert failed(res, "ptq-int8") == [
        "accuracy drop 2.0 pts > 1.0 pts allowed (0.9700 vs baseline 0.9900)"
    ]
    assert res["ranking"] == ["ptq-fp16", "fp32-tflite", "ort-int8"]
    # 2.5 points allowed: int8 passes and is fastest
    assert select(evals, {"max_accuracy_drop": 0.025})["selected"] == "ptq-int8"


def test_relative_accuracy_drop(evals):
    # int8 drops 0.02 / 0.99 = 2.02 % of the baseline
    res = select(evals, {"max_relative_accuracy_drop": 0.02})
    assert res["selected"] == "ptq-fp16"
    assert failed(res, "ptq-int8")[0].startswith("relative accuracy drop 2.02 % > 2.00 %")
    assert select(evals, {"max_relative_accuracy_drop": 0.021})["selected"] == "ptq-int8"


def test_max_latency(evals):
    res = select(evals, {"max_latency_ms": 9.5, "objective": "accuracy"})
    assert res["selected"] == "ptq-fp16"  # most accurate under 9.5 ms (fp32 is 10 ms)
    assert failed(res, "fp32-tflite") == ["latency p50 10.000 ms > 9.500 ms allowed"]


def test_min_latency_improvement_never_prefers_a_slower_int8(evals):
    res = select(evals, {"min_latency_improvement": 0.2, "formats": ["onnx", "tflite"]})
    assert res["selected"] == "ptq-int8"
    assert any(
        "latency improvement -30.0 % < 20.0 % required" in f for f in failed(res, "ort-int8")
    )
    assert "latency improvement 10.0 %" in failed(res, "ptq-fp16")[0]
    # objective size alone would pick the int8 ONNX model that is slower than FP32 ...
    only_size = select(evals, {"objective": "size", "max_accuracy_drop": 0.01})
    assert only_size["selected"] == "ort-int8"
    # ... but asking for any speed-up refuses it: slower than the baseline measured the same way
    no_slower = select(
        evals, {"objective": "size", "max_accuracy_drop": 0.01, "min_latency_improvement": 0.0}
    )
    assert no_slower["selected"] == "ptq-fp16"


def test_size_goal_bytes_and_mb(evals):
    res = select(evals, {"max_size_bytes": 30_000, "max_accuracy_drop": 0.01})
    assert res["selected"] == "ort-int8"
    assert failed(res, "ptq-fp16") == ["size 0.041 MB (41000 B) > 0.030 MB allowed"]
    assert select(evals, {"max_size_mb": 0.03, "max_accuracy_drop": 0.01})["selected"] == (
        "ort-int8"
    )


def test_formats_default_to_deployable(evals):
    evals.append(ev("keras-original", "baseline", 0.995, 1.0, 300_000, fmt="keras"))
    res = select(evals, {}, baseline="fp32-tflite")
    assert res["selected"] == "ptq-int8"
    assert failed(res, "keras-original") == [
        f"format keras not in allowed formats {list(DEPLOYABLE)}"
    ]
    assert "tflite" in DEPLOYABLE and "onnx" in DEPLOYABLE and "keras" not in DEPLOYABLE


def test_no_candidate_meets_the_goals(evals):
    res = select(evals, {"max_accuracy_drop": 0.0, "max_latency_ms": 1.0})
    assert res["selected"] is None
    assert res["deploy"] is False
    assert res["ranking"] == []
    assert all(not c["passed"] and c["failed_goals"] for c in res["candidates"])
    assert res["reason"].startswith("no candidate meets the goals: fp32-tflite: latency p50")


def test_baseline_included_or_excluded(evals):
    goals = {"max_accuracy_drop": 0.0}
    assert select(evals, goals)["selected"] == "fp32-tflite"
    assert "no optimized candidate" in select(evals, goals)["reason"]
    res = select(evals, {**goals, "include_baseline": False})
    assert res["selected"] is None
    assert failed(res, "fp32-tflite") == ["is the baseline, and include_baseline is false"]


def test_find_baseline_prefers_deployable_fp32(evals):
    evals.append(ev("fp32-onnx", "fp32", 0.990, 12.0, 83_000, fmt="onnx"))
    evals.append(ev("baseline", "baseline", 0.990, 30.0, 300_000, fmt="keras"))
    assert find_baseline(evals).name == "fp32-tflite"  # most candidates are tflite
    assert find_baseline(evals, "fp32-onnx").name == "fp32-onnx"
    with pytest.raises(NotFoundError, match="baseline 'nope' is not among"):
        find_baseline(evals, "nope")
    with pytest.raises(InvalidInputError, match="cannot tell which evaluation"):
        find_baseline([ev("a", "ptq-int8", 0.9, 1.0, 10)])


def test_thread_mismatch_is_warned(evals):
    evals[1].threads = 1
    assert "ptq-int8 was timed with 1 threads" in select(evals)["warnings"][0]


@pytest.mark.parametrize(
    ("goals", "message"),
    [
        ({"max_acuracy_drop": 0.01}, "max_acuracy_drop: Extra inputs are not permitted"),
        ({"max_accuracy_drop": 5}, "max_accuracy_drop: Input should be less than or equal to 1"),
        ({"objective": "speed"}, "objective: Input should be 'latency', 'size' or 'accuracy'"),
        ({"max_size_bytes": 1, "max_size_mb": 1}, "give max_size_bytes or max_size_mb"),
        ({"formats": ["exe"]}, "formats must be a non-empty subset"),
        ("[1, 2]", "goals must be a JSON object / dict, got list"),
        ("{not json", "goals must be a JSON object"),
    ],
)
def test_bad_goals_are_refused_with_the_reason(goals, message, evals):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select(evals, goals)


def test_parse_goals_accepts_json_and_empty():
    assert parse_goals('{"max_accuracy_drop": 0.01}').max_accuracy_drop == 0.01
    assert parse_goals("") == Goals()
    assert Goals(max_size_mb=1.5).size_limit == 1_500_000


def test_dicts_shaped_like_evaluations_are_accepted(evals):
    as_dicts = [e.to_dict() for e in evals]
    assert select(as_dicts, {"max_accuracy_drop": 0.01}) == select(
        evals, {"max_accuracy_drop": 0.01}
    )


def test_bad_evaluations(evals):
    with pytest.raises(InvalidInputError, match="no evaluations given"):
        select([])
    with pytest.raises(InvalidInputError, match="two evaluations are named 'fp32-tflite'"):
        select(evals + [evals[0]])
    with pytest.raises(InvalidInputError, match=r"missing keys \['latency_ms'\]"):
        select([{k: v for k, v in evals[0].to_dict().items() if k != "latency_ms"}])


def _candidate_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "model.tflite").write_bytes(b"\x00\x00\x00\x00TFL3" + b"\x00" * 16)
    (d / "candidate.json").write_text(
        json.dumps(
            {"name": name, "technique": "t", "format": "tflite", "model_file": "model.tflite"}
        )
    )
    return d


def test_select_from_files_copies_the_chosen_model(tmp_path, evals):
    evals[2].outputs_sample = OutputsSample(output_name="probs", values=[0.25, 0.75])
    files, dirs = [], []
    for e in evals[1:]:
        f = tmp_path / f"{e.name}.json"
        f.write_text(e.to_json())
        files.append(f)
        dirs.append(_candidate_dir(tmp_path, e.name))
    base = tmp_path / "base.json"
    base.write_text(evals[0].to_json())
    chosen = tmp_path / "chosen"
    res = select_from_files(
        files,
        base,
        '{"max_accuracy_drop": 0.01}',
        tmp_path / "sel.json",
        dirs,
        _candidate_dir(tmp_path, "fp32-tflite"),
        chosen,
    )
    assert res["selected"] == "ptq-fp16"
    assert json.loads((chosen / "candidate.json").read_text())["name"] == "ptq-fp16"
    assert res["chosen_metadata"]["name"] == "ptq-fp16"
    assert res["chosen_metadata"]["selected"] == "ptq-fp16"
    assert res["selection_metadata"] == {
        "selected": "ptq-fp16",
        "deploy": True,
        "reason": res["reason"],
    }
    written = json.loads((tmp_path / "sel.json").read_text())
    assert written["selected"] == "ptq-fp16"
    # the deploy step's smoke test reads the chosen candidate's recorded output from here
    assert written["outputs_sample"] == {
        "index": 0,
        "split": "eval",
        "output_name": "probs",
        "values": [0.25, 0.75],
    }
    assert "selection_metadata" not in written  # only for the KFP step's outputs
    # nothing meets the goals: no model, an explanation instead
    res = select_from_files(
        files,
        base,
        '{"max_latency_ms": 0.1}',
        tmp_path / "sel.json",
        dirs,
        tmp_path / "fp32-tflite",
        chosen,
    )
    assert res["deploy"] is False
    assert sorted(p.name for p in chosen.iterdir()) == ["NOT_SELECTED.txt"]
    assert res["chosen_metadata"] == {"selected": ""}
    assert res["selection_metadata"]["selected"] == "" and not res["selection_metadata"]["deploy"]
    # bad goals fail before anything is written
    with pytest.raises(ConfigError):
        select_from_files(files, base, '{"bogus": 1}', tmp_path / "other.json")
    assert not (tmp_path / "other.json").exists()
    with pytest.raises(InvalidInputError, match="3 evaluations but 2 models"):
        select_from_files(files, base, "", tmp_path / "other.json", dirs[:2])


def test_duplicate_candidate_names_are_refused(tmp_path):
    """Two different candidates with one name cannot both be compared and deployed."""
    import json

    from kfedge.errors import InvalidInputError
    from kfedge.select import select_from_files

    def ev(name: str, p50: float) -> dict:
        return {
            "name": name,
            "technique": "x",
            "format": "tflite",
            "accuracy": 0.99,
            "latency_ms": {"p50": p50, "p90": p50, "p99": p50},
            "size_bytes": 10,
            "size_gzip_bytes": 5,
            "threads": 1,
        }

    files = []
    for i, (name, p50) in enumerate([("base", 1.0), ("model.onnx", 0.5), ("model.onnx", 0.7)]):
        f = tmp_path / f"ev{i}.json"
        f.write_text(json.dumps(ev(name, p50)))
        files.append(f)
    with pytest.raises(InvalidInputError, match="two candidates are named 'model.onnx'"):
        select_from_files(files[1:], files[0], {}, tmp_path / "selection.json")
    assert not (tmp_path / "selection.json").exists()
