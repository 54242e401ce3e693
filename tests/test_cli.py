"""The kfedge command line: help, targets, and bad arguments (exit 2, one clear line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kfedge.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kfedge.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_help_lists_every_command():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("run", "compile", "submit", "serve", "targets", "techniques", "report", "evaluate"):
        assert cmd in res.stdout
    for cmd in ("run", "submit", "serve", "compile", "report", "targets", "evaluate"):
        sub = run_cli(cmd, "--help")
        assert sub.returncode == 0 and "usage: kfedge" in sub.stdout, cmd
    assert "--max-accuracy-drop" in run_cli("run", "--help").stdout


def test_techniques_list_and_show(capsys: pytest.CaptureFixture[str]):
    from kfedge.provision import TECHNIQUE_OUTPUT

    assert main(["techniques"]) == 0
    out = capsys.readouterr().out
    for name in TECHNIQUE_OUTPUT:
        assert name in out
    assert main(["techniques", "prune"]) == 0
    assert "target_sparsity" in capsys.readouterr().out
    assert main(["techniques", "sparsify"]) == 2
    assert "unknown technique" in capsys.readouterr().err


def test_targets_list_and_show(capsys: pytest.CaptureFixture[str]):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("cpu-amd64", "cpu-arm64", "nvidia-jetson", "coral-edgetpu"):
        assert name in out
    assert main(["targets", "show", "nvidia-jetson"]) == 0
    shown = capsys.readouterr().out
    assert "nvidia.com/gpu" in shown and "arch: arm64" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--target", "jetson-nano"], "unknown target 'jetson-nano'; available:"),
        (
            ["run", "--model", "/nonexistent/model.keras", "--data", "/nonexistent/d.npz"],
            "model not found: /nonexistent/model.keras",
        ),
        (
            ["run", "--model", "sample://baseline", "--data", "ftp://host/data.npz"],
            "unsupported storage scheme 'ftp'",
        ),
        (["run", "--techniques", "ptq-int8,magic"], "unknown technique(s) ['magic']"),
        (
            ["run", "--target", "coral-edgetpu", "--techniques", "onnx-int8-static"],
            "target coral-edgetpu runs formats ['tflite']",
        ),
        (["run", "--max-accuracy-drop", "-1"], "--max-accuracy-drop must be >= 0"),
        (["targets", "show", "nope"], "unknown target 'nope'"),
        (["report", "/nonexistent/run"], "no report.json at /nonexistent/run"),
        (["serve", "/nonexistent/model.tflite"], "not found"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(args: list[str], message: str, tmp_path: Path):
    if args[0] == "run":
        args = [*args, "--output-dir", str(tmp_path)]
    res = run_cli(*args)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert message in lines[0]
    assert "Traceback" not in res.stderr


def test_data_uri_on_unreachable_s3_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with block ends: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfedge.cli",
            "run",
            "--model",
            "s3://models/m.keras",
            "--data",
            "s3://data/d.npz",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert f"127.0.0.1:{port}" in res.stderr
    assert "very-secret-value-123" not in res.stderr + res.stdout
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
