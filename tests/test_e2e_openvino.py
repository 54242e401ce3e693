"""End to end on intel-cpu-openvino: OpenVINO candidates through `kfedge run` (kfp.local)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfedge.local_run import run_local

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TECHNIQUES = ["openvino-int8", "fp32-onnx"]


@pytest.fixture(scope="module")
def vino_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("e2e-openvino")
    goals = {"max_accuracy_drop": 0.02, "objective": "latency", "formats": ["openvino"]}
    quick = {"calibration_samples": 64, "latency_runs": 30, "quiet": True}
    return run_local(
        target="intel-cpu-openvino",
        techniques=",".join(TECHNIQUES),
        goals=goals,
        output_dir=out,
        **quick,
    )


def test_openvino_candidates_are_evaluated_and_reported_against_the_openvino_fp32(vino_run: dict):
    report = json.loads(Path(vino_run["report"]).read_text())
    assert report["baseline"] == "fp32-openvino"  # the target lists openvino first
    rows = {c["name"]: c for c in report["candidates"]}
    assert {"fp32-openvino", "openvino-int8", "fp32-onnx"} <= set(rows)
    assert rows["openvino-int8"]["format"] == rows["fp32-openvino"]["format"] == "openvino"
    for name in ("fp32-openvino", "openvino-int8"):
        row = rows[name]
        assert 0.9 <= row["accuracy"] <= 1.0, name
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"], name
        assert row["size_bytes"] > row["size_gzip_bytes"] > 0, name
    # INT8 weights: the IR with its .bin is smaller than the FP32 one (the tiny sample's graph
    # .xml, which grows with the FakeQuantize nodes, is a large share of it)
    assert rows["openvino-int8"]["size_bytes"] < rows["fp32-openvino"]["size_bytes"]
    timings = json.loads(Path(vino_run["timings"]).read_text())
    assert {"fp32-openvino", "openvino-int8"} <= set(timings["models"])
    assert timings["models"]["openvino-int8"]["format"] == "openvino"
    assert "openvino" in json.dumps(timings["models"]["openvino-int8"]["runtime"]).lower()


def test_an_openvino_candidate_is_selected_and_served_over_v1_and_v2(vino_run: dict):
    report = json.loads(Path(vino_run["report"]).read_text())
    assert report["selected"] in ("fp32-openvino", "openvino-int8")  # goals allow openvino only
    deploy = vino_run["deploy"]
    assert deploy["passed"] is True and deploy["mode"] == "local"
    assert deploy["protocols"]["v1"]["passed"] and deploy["protocols"]["v2"]["passed"]
    chosen = Path(vino_run["selected_model"])
    meta = json.loads((chosen / "candidate.json").read_text())
    assert meta["name"] == report["selected"] and meta["format"] == "openvino"
    assert (chosen / "model.xml").is_file() and (chosen / "model.bin").is_file()
