"""Smoke test of the ``make bench`` code paths with tiny parameters (not a timed test).

One module-scoped run of the seeds, traps (without MobileNetV2) and serving sections on the
session's sample baseline, then checks of the tables' rows and columns and of the arithmetic
behind the ratios. Timings are never asserted: only their shape and consistency.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench
from benchmarks import seeds, serving, traps
from benchmarks.common import interleaved, md_table, median, spread

pytest.importorskip("kserve")


def _table(markdown: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """The Markdown table whose header starts with ``first_header``: (header, rows)."""
    lines = markdown.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    assert re.fullmatch(r"\|(---\|)+", lines[start + 1]), lines[start + 1]
    rows = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
    return header, rows


@pytest.fixture(scope="module")
def results(sample_dataset: Path, baseline_model: Path, tmp_path_factory) -> dict[str, Any]:  # noqa: ANN001
    cfgs = {
        "seeds": seeds.SeedsConfig(
            techniques=("ptq-int8", "onnx-int8-static"),
            threads=(1, 2),
            rounds=2,
            latency_runs=40,
            warmup=5,
            time_budget_s=0.5,
        ),
        "traps": traps.TrapsConfig(mobilenet=False, rounds=1, small_runs=50, warmup=5),
        "serving": serving.ServingConfig(cases=((1, 1, 12), (3, 2, 12)), rounds=1, warmup=2),
    }
    return bench.run(
        ("seeds", "traps", "serving"),
        work_dir=tmp_path_factory.mktemp("bench"),
        dataset=sample_dataset,
        baseline=baseline_model,
        cfgs=cfgs,
    )


def test_interleaved_order_changes_every_round() -> None:
    items = ["a", "b", "c", "d"]
    orders = [interleaved(items, r) for r in range(4)]
    assert orders[0] == items
    assert orders[1] == items[::-1]
    assert all(sorted(o) == items for o in orders)
    assert len({tuple(o) for o in orders}) == 4
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert spread([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert md_table(["a", "b"], [["x|y", 1]]).splitlines() == [
        "| a | b |",
        "|---|---|",
        "| x\\|y | 1 |",
    ]


def test_seeds_table_rows_and_columns(results: dict[str, Any]) -> None:
    md = bench.render(results)
    header, rows = _table(md, "Model")
    assert header == seeds.SEEDS_HEADER
    # one row per format (TFLite, ONNX) and thread count (1, 2)
    assert [r[0] for r in rows] == [
        "mobilenet_tiny 32x32 digits, TFLite, 1 thread",
        "mobilenet_tiny 32x32 digits, TFLite, 2 threads",
        "mobilenet_tiny 32x32 digits, ONNX Runtime, 1 thread",
        "mobilenet_tiny 32x32 digits, ONNX Runtime, 2 threads",
    ]
    for r in rows:
        assert len(r) == len(header)
        assert float(r[1]) >= 0.9  # the sample baseline's FP32 accuracy
        assert float(r[7]) > float(r[8]) > 0  # INT8 file smaller than FP32
    assert rows[0][3] == "N/A" and rows[2][3] == "N/A"  # no qat-int8 in this plan / no ONNX QAT


def test_candidate_table_ratios_are_same_round_vs_same_format(results: dict[str, Any]) -> None:
    res = results["seeds"]
    # the FP32 references are added to the requested techniques
    assert res["config"]["techniques"] == [
        "fp32-tflite",
        "fp32-onnx",
        "ptq-int8",
        "onnx-int8-static",
    ]
    by = {r["name"]: r for r in res["candidates"]}
    assert by["ptq-int8"]["reference"] == "fp32-tflite"
    assert by["onnx-int8-static"]["reference"] == "fp32-onnx"
    for t in (1, 2):
        assert by["fp32-tflite"]["latency"][t]["ratio"] == 1.0
        lat, ref = by["ptq-int8"]["latency"][t], by["fp32-tflite"]["latency"][t]
        assert len(lat["p50_rounds"]) == 2
        want = median([a / b for a, b in zip(lat["p50_rounds"], ref["p50_rounds"])])
        assert lat["ratio"] == pytest.approx(want)
        assert lat["p50"] == pytest.approx(median(lat["p50_rounds"]))
    q = by["onnx-int8-static"]
    assert q["size_ratio"] == pytest.approx(q["size_bytes"] / by["fp32-onnx"]["size_bytes"])
    assert q["accuracy_delta_points"] == pytest.approx(
        100 * (q["accuracy"] - by["fp32-onnx"]["accuracy"])
    )
    assert all(r["technique_seconds"] > 0 for r in res["candidates"])

    header, rows = _table(bench.render(results), "Candidate")
    assert header[:4] == ["Candidate", "Format", "Accuracy", "Δ acc (points)"]
    for col in (
        "ratio vs FP32 @1t",
        "ratio vs FP32 @2t",
        "p50 ms @2t",
        "gzip ratio",
        "Technique time (s)",
    ):
        assert col in header
    assert sorted(r[0] for r in rows) == sorted(by)
    assert all(len(r) == len(header) for r in rows)
    ratio_col = header.index("ratio vs FP32 @1t")
    assert {r[0]: r[ratio_col] for r in rows}["fp32-onnx"] == "1.00x"


def test_traps_tables(results: dict[str, Any]) -> None:
    t = results["traps"]
    assert t["mobilenet"] is None
    (spin,) = t["spinning"]
    assert set(spin["cells"]) == {
        "block/spin-on",
        "block/spin-off",
        "alternate/spin-on",
        "alternate/spin-off",
    }
    assert all(len(v) == 2 for v in spin["cells"].values())  # both models of the pair
    (tfp,) = t["tf_process"]
    assert tfp["ratio"]["subprocess, TF idle here"] == 1.0
    assert tfp["tf_busy_steps"] > 0  # TensorFlow really was busy
    md = bench.render(results)
    header, rows = _table(md, "Model pair")
    assert len(rows) == 4 and header[-1] == "alternate / block"
    header, rows = _table(md, "Model (FP32 ONNX)")
    assert [r[2] for r in rows] == list(tfp["cells"])


def test_serving_table(results: dict[str, Any]) -> None:
    s = results["serving"]
    cases = [(r["clients"], r["batch"], r["protocol"]) for r in s["rows"]]
    assert cases == [
        (c, b, p) for c, b in ((1, 1), (3, 2)) for p in ("in-process", *serving.PROTOCOLS)
    ]
    for r in s["rows"]:
        assert r["p50"] > 0 and r["throughput_rps"] > 0
        if r["protocol"] == "in-process":
            assert r["latency_ratio"] == 1.0 and r["request_bytes"] is None
    sizes = {r["protocol"]: r["request_bytes"] for r in s["rows"] if r["batch"] == 2}
    assert sizes["v2-binary"] < sizes["v2-json"]  # raw float32 vs decimal text
    header, rows = _table(bench.render(results), "Clients")
    assert header[2] == "Path" and len(rows) == 8


def test_document_has_machine_and_rerun_command(results: dict[str, Any]) -> None:
    md = bench.render(results)
    assert md.startswith("# kfedge benchmarks\n")
    assert "make bench" in md and "python -m benchmarks.run --quick" in md
    for heading in (
        "## Machine",
        "## 1. The seeds' table",
        "## 2. The measuring traps",
        "## 3. Serving",
    ):
        assert heading in md
    assert "## 4." not in md  # e2e was not run
    header, rows = _table(md, "")
    assert [r[0] for r in rows][:3] == ["CPU", "Cores", "SIMD"]
    assert any(r[0] == "Libraries" and "onnxruntime" in r[1] for r in rows)


def test_cli_refuses_unknown_section_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--sections", "seeds,warp"])
    assert exc.value.code == 2
    assert "unknown section(s) ['warp']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0"])
