"""Side-by-side timing: fresh TF-free workers, interleaved rounds, threads capped, ties found."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from kfedge import cpu, sidebyside, stats
from kfedge.errors import InvalidInputError


def test_threads_never_exceed_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda _pid: {0})
    monkeypatch.setattr(cpu, "_cgroup_quota", lambda: None)
    assert cpu.usable_cpus() == (1, "affinity")
    assert sidebyside.resolve_threads(4) == (1, 1, "affinity")
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(cpu, "_cgroup_quota", lambda: 2)
    assert sidebyside.resolve_threads(0) == (2, 2, "cgroup cpu quota")


def test_cgroup_v2_quota_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path

    def fake(p: str) -> Path:
        return tmp_path / "cpu.max" if p == "/sys/fs/cgroup/cpu.max" else real(p)

    (tmp_path / "cpu.max").write_text("250000 100000\n")
    monkeypatch.setattr(cpu, "Path", fake)
    assert cpu._cgroup_quota() == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu._cgroup_quota() is None


@pytest.fixture(scope="module")
def session(fp32_tflite: Path, fp32_onnx: Path, sample_dataset: Path, tmp_path_factory):
    from kfedge.data import load_split

    twin = tmp_path_factory.mktemp("twin") / "twin.tflite"
    shutil.copy(sidebyside_model(fp32_tflite), twin)
    x, _ = load_split(sample_dataset, "eval", limit=1)
    return sidebyside.time_side_by_side(
        {"fp32-tflite": fp32_tflite, "twin": twin, "fp32-onnx": fp32_onnx},
        x[:1],
        rounds=6,  # 4 rounds gave too few degrees of freedom: a same-file pair read slower
        runs_per_round=40,
        round_budget_s=0.2,
        pause_s=0.05,
        threads=1,
    )


def sidebyside_model(p: Path) -> Path:
    from kfedge.candidate import model_path

    return model_path(p)


def test_every_model_timed_in_every_round_without_tensorflow(session) -> None:
    assert set(session.models) == {"fp32-tflite", "twin", "fp32-onnx"}
    for t in session.models.values():
        assert len(t.rounds_p50_ms) == 6
        assert t.runs >= 40
        assert t.p50_ci_ms[0] <= t.p50_ms * 1.5 and t.p50_ms <= t.p90_ms <= t.p99_ms
        assert t.runtime["tensorflow_loaded"] is False
        assert t.peak_rss_mb is None or t.peak_rss_mb > 0
    assert session.threads == 1


def test_the_same_file_twice_is_a_tie(session) -> None:
    # Two processes running one file differ by a few per cent that interleaved rounds do not
    # randomize (process placement, memory alignment): 1.036x [1.020, 1.053] was seen for the
    # same file on a 2-core AVX-512 EPYC. A tie within 5 % is what the property can promise.
    # The verdict is the property: a noisy run widens the interval (0.92x [0.64, 1.31] was seen
    # in CI), so the point ratio alone proves nothing.
    est = session.ratio("twin", "fp32-tflite")
    assert stats.compare_ratio(est, practical=0.05) == "tie"


def test_round_trip_and_skips(session, tmp_path: Path) -> None:
    path = sidebyside.save(session, tmp_path / "sbs.json")
    again = sidebyside.load(path)
    assert again.models["twin"].rounds_p50_ms == session.models["twin"].rounds_p50_ms
    with pytest.raises(InvalidInputError, match="not timed side by side"):
        again.ratio("nope", "twin")
    (tmp_path / "bad.json").write_text('{"kind": "other"}')
    with pytest.raises(InvalidInputError, match="side-by-side"):
        sidebyside.load(tmp_path / "bad.json")


def test_tensorflow_models_are_skipped_with_a_reason(baseline_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="no model to time"):
        sidebyside.time_side_by_side({"baseline": baseline_model}, np.zeros((1, 8, 8, 1)))


def test_benchmark_step_names_from_candidates_and_refuses_duplicates(
    fp32_tflite: Path, fp32_onnx: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    from kfedge.candidate import Candidate, save_candidate

    dirs = []
    for src, fmt in ((fp32_tflite, "tflite"), (fp32_onnx, "onnx")):
        d = tmp_path / f"fp32-{fmt}"
        d.mkdir()
        shutil.copy(sidebyside_model(src), d / f"model.{fmt}")
        save_candidate(Candidate(f"fp32-{fmt}", f"fp32-{fmt}", fmt, f"model.{fmt}"), d)
        dirs.append(d)
    out = tmp_path / "timings.json"
    res = sidebyside.benchmark_from_files(
        dirs, sample_dataset, out, rounds=2, round_budget_s=0.05, threads=1
    )
    assert set(res.models) == {"fp32-tflite", "fp32-onnx"}  # the candidates' own names
    assert sidebyside.load(out).rounds == 2
    assert res.kfp_metadata()["threads"] == 1
    with pytest.raises(InvalidInputError, match="unique"):
        sidebyside.benchmark_from_files([dirs[0], dirs[0]], sample_dataset, out, threads=1)


def test_absent_accelerator_fails_the_benchmark_in_one_line(
    fp32_onnx: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    from kfedge.errors import AcceleratorError

    with pytest.raises(AcceleratorError, match="CUDAExecutionProvider") as err:
        sidebyside.benchmark_from_files(
            [fp32_onnx], sample_dataset, tmp_path / "t.json", target="nvidia-gpu", rounds=1
        )
    assert "\n" not in str(err.value)
