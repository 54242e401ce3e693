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
    commands = ("run", "compile", "submit", "schedules", "doctor", "serve", "targets")
    for cmd in (*commands, "techniques", "report", "evaluate"):
        assert cmd in res.stdout
    for cmd in (*commands, "report", "evaluate"):
        sub = run_cli(cmd, "--help")
        assert sub.returncode == 0 and "usage: kfedge" in sub.stdout, cmd
    assert "--max-accuracy-drop" in run_cli("run", "--help").stdout


def test_techniques_list_and_show(capsys: pytest.CaptureFixture[str]):
    from kfedge.techniques import TECHNIQUES

    assert main(["techniques"]) == 0
    out = capsys.readouterr().out
    for name, decl in TECHNIQUES.items():
        assert any(line.split()[:3] == [name, *decl.output] for line in out.splitlines()), name
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
            "onnx-int8-static writes onnx, the target runs ['tflite']",
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
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    # a refused connection may be a server restarting: retried (one notice per retry), then
    # one error line that says it was transient
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1 and errors[0].endswith("(transient: gave up after 4 attempts)")
    notices = [ln for ln in lines if ln not in errors]
    assert len(notices) == 3 and all("failed (attempt" in ln for ln in notices)


def test_a_registered_command_gets_its_arguments_and_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from kfedge import cli

    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))  # registrations stay in this test

    @cli.command("hello", "say hello", cli.arg("--name", default="world"))
    def _hello(args) -> int:  # noqa: ANN001
        print(f"hello {args.name}")
        return 3

    assert main(["hello", "--name", "edge"]) == 3
    assert capsys.readouterr().out == "hello edge\n"
    assert "say hello" in cli.build_parser().format_help()
    with pytest.raises(ValueError, match="registered twice"):
        cli.command("hello", "again")(_hello)


def test_run_and_submit_pass_every_option(monkeypatch: pytest.MonkeyPatch, capsys):  # noqa: ANN001
    import kfedge.local_run
    import kfedge.submit

    seen: dict[str, dict] = {}
    monkeypatch.setattr(kfedge.local_run, "run_local", lambda **kw: seen.update(run=kw) or {})
    monkeypatch.setattr(
        kfedge.submit, "submit", lambda **kw: seen.update(submit=kw) or {"state": "SUCCEEDED"}
    )
    argv = ["run", "--model", "m.keras", "--data", "d.npz", "--target", "cpu-arm64"]
    argv += ["--techniques", "ptq-int8", "--epochs", "2", "--calibration-samples", "50"]
    argv += ["--latency-runs", "9", "--output-dir", "out", "--no-deploy", "--max-latency-ms", "4"]
    argv += ["--runner", "docker"]
    assert main(argv) == 0
    assert seen["run"] == {
        "model": "m.keras",
        "data": "d.npz",
        "target": "cpu-arm64",
        "techniques": "ptq-int8",
        "epochs": 2,
        "calibration_samples": 50,
        "latency_runs": 9,
        "output_dir": "out",
        "runner": "docker",
        "goals": {"max_accuracy_drop": 0.015, "objective": "latency", "max_latency_ms": 4.0},
        "deploy": False,
    }
    argv = ["submit", "--host", "h", "--namespace", "ns", "--pipeline", "edge-optimize"]
    argv += ["--experiment", "e", "--run-name", "r", "--version-name", "v", "-p", "epochs=3"]
    assert main(argv) == 0
    assert seen["submit"] == {
        "pipeline": "edge-optimize",
        "host": "h",
        "namespace": "ns",
        "experiment": "e",
        "run_name": "r",
        "version_name": "v",
        "params": {"epochs": 3},
        "wait": True,
        "check": False,
    }
    assert main(["submit", "--interval", "3600"]) == 0
    assert seen["submit"]["interval"] == 3600 and seen["submit"]["wait"] is False
    assert main(["submit", "--schedule", "@daily", "--no-wait"]) == 0
    assert seen["submit"]["schedule"] == "@daily" and "interval" not in seen["submit"]


def test_doctor_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`kfedge doctor` prints one line per finding and a summary; without a KFP endpoint the
    KFP check is a warning, so the exit code is 0 (a failed check gives 1, bad input 2)."""
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert main(["doctor", "--no-kube", "--target", "cpu-arm64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(ln.split()[0] in ("OK", "WARN", "FAIL") for ln in out[:-1])
    assert any(ln.startswith("WARN kfp:") for ln in out)
    assert any(ln.startswith("OK   images:") and "linux/arm64" in ln for ln in out)
    assert out[-1].startswith("0 failed")
    assert main(["doctor", "--target", "no-such-target", "--no-kube"]) == 2
    assert "unknown target" in capsys.readouterr().err


def test_doctor_checks_the_namespace_a_run_deploys_into(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import kfedge.doctor
    from kfedge import kube

    seen: dict = {}
    monkeypatch.setattr(kfedge.doctor, "run_doctor", lambda *a, **kw: seen.update(kw) or [])
    (tmp_path / "ns").write_text("kubeflow-user-example-com\n")
    monkeypatch.setattr(kube, "SA_NAMESPACE", tmp_path / "ns")
    assert main(["doctor"]) == 0
    assert seen["namespace"] == "kubeflow-user-example-com"
    assert main(["doctor", "--namespace", "edge"]) == 0 and seen["namespace"] == "edge"
