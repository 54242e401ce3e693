"""``kfedge run``: the pipeline through kfp.local on this machine, with readable progress.

kfp.local prints every task's executor input and logs; here they go to ``run.log`` in the
run directory, and the terminal shows which step runs, its elapsed time, training epochs and,
when a step fails, its error line instead of a stack of KFP internals.

It runs the same pipeline as a cluster, so latency comes from the same side-by-side benchmark
step: kfp.local runs the loop's iterations concurrently (a candidate may be evaluated while
another is fine-tuned), but the benchmark runs after the whole loop, alone, and times every
candidate and the FP32 reference together; its timings are copied to ``latest/timings.json``.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from kfedge.errors import ConfigError, KfedgeError, NotFoundError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '?([\w\-]+)'?")
_END = re.compile(r"Task '?([\w\-]+)'? finished with status (\w+)")
_ERROR = re.compile(r"^\s*(?:kfedge\.errors\.)?(\w*(?:Error|Exception)): (.+)$")


class ProgressStream:
    """A stdout stand-in: everything to a log file, progress lines to the terminal."""

    def __init__(self, log: TextIO, term: TextIO) -> None:
        self.log, self.term = log, term
        self._buf = ""
        self._started: dict[str, list[float]] = {}
        self.t0 = time.monotonic()
        self.error_lines: list[str] = []
        self.failed: list[str] = []

    def _show(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        self.term.write(f"[{elapsed:6.1f}s] {text}\n")
        self.term.flush()

    def _line(self, raw: str) -> None:
        line = _ANSI.sub("", raw).rstrip()
        if m := _START.search(line):
            self._started.setdefault(m.group(1), []).append(time.monotonic())
            self._show(f"start  {m.group(1)}")
        elif m := _END.search(line):
            starts = self._started.get(m.group(1)) or [self.t0]
            took = time.monotonic() - starts.pop(0)  # parallel tasks of one name: first in
            status = m.group(2)
            if status != "SUCCESS":
                self.failed.append(m.group(1))
            self._show(f"{status.lower():8s}{m.group(1)} ({took:.1f}s)")
        elif "[kfedge]" in line:
            self._show("  " + line.split("[kfedge]", 1)[1].strip())
        elif (m := _ERROR.match(line)) and "Traceback" not in line:
            self.error_lines.append(f"{m.group(1)}: {m.group(2)}")

    def write(self, s: str) -> int:  # noqa: D102
        self.log.write(s)
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._line(line)
        return len(s)

    def flush(self) -> None:  # noqa: D102
        self.log.flush()

    def isatty(self) -> bool:  # noqa: D102
        return False


def find_report(path: str | Path | None, output_dir: str | Path = "local_outputs") -> Path:
    """The report.json of a path, a run directory, or the last run under ``output_dir``."""
    if path:
        p = Path(path)
        if p.is_file():
            return p
        hits = sorted(p.rglob("report.json"), key=lambda f: f.stat().st_mtime) if p.is_dir() else []
        if hits:
            return hits[-1]
        raise NotFoundError(f"no report.json at {p}")
    latest = Path(output_dir) / "latest" / "report.json"
    if latest.is_file():
        return latest
    raise NotFoundError(f"no report yet under {output_dir}; run `kfedge run` first")


def _find(run_dir: Path, name: str) -> Path | None:
    hits = sorted(run_dir.rglob(name), key=lambda f: f.stat().st_mtime)
    return hits[-1] if hits else None


#: The uid of the images' user (images/Dockerfile.*).
IMAGE_UID = 10001


def docker_preflight() -> None:
    """Check that the docker runner can run: the ``docker`` package, the daemon, both images.

    Raises:
        ConfigError: What is missing, and how to fix it, in one line.
    """
    from importlib.util import find_spec

    from kfedge._version import COMPONENT_IMAGE, SERVING_IMAGE
    from kfedge.images import docker_problem, image_present

    if find_spec("docker") is None:
        raise ConfigError(
            "--runner docker needs the Python package 'docker' (kfp.local's DockerRunner): "
            "pip install 'kfedge[pipelines]'"
        )
    problem = docker_problem()
    if problem:
        raise ConfigError(f"--runner docker: {problem}")
    missing = [ref for ref in (COMPONENT_IMAGE, SERVING_IMAGE) if image_present(ref) is None]
    if missing:
        raise ConfigError(
            f"--runner docker: the Docker engine has no image {', '.join(missing)}: build them "
            "with `make images` (no registry needed)"
        )


def docker_runner(local: Any, run_dir: Path) -> Any:
    """kfp.local's DockerRunner, with the pipeline root writable by the containers' user.

    The images run as uid 10001 (non-root, as on a cluster). A non-root user's containers run
    as that user (the files stay theirs); for root, the run directory is handed to uid 10001.

    Args:
        local: The ``kfp.local`` module.
        run_dir: The pipeline root (bind-mounted at the same path by kfp.local).

    Returns:
        The runner.
    """
    uid = os.getuid()
    if uid == 0:
        for path in [run_dir, *run_dir.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)
        user = f"{IMAGE_UID}:{IMAGE_UID}"
    else:
        user = f"{uid}:{os.getgid()}"
    return local.DockerRunner(user=user)


def _stage_input(uri: str, dest: Path) -> str:
    """A local file or directory, copied under the pipeline root (what the containers see)."""
    from kfedge.uris import is_remote, local_path

    if uri.startswith("sample://") or is_remote(uri):
        return uri
    src = local_path(uri)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / src.name
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy2(src, target)
    return str(target)


def run_local(
    model: str = "sample://baseline",
    data: str = "sample://digits",
    target: str = "cpu-amd64",
    techniques: str | list[str] = "auto",
    goals: dict[str, Any] | None = None,
    epochs: int = 0,
    calibration_samples: int = 0,
    latency_runs: int = 30,
    output_dir: str | Path = "local_outputs",
    deploy: bool = True,
    quiet: bool = False,
    runner: str = "subprocess",
) -> dict[str, Any]:
    """Run edge-optimize-deploy (or edge-optimize) through kfp.local and print the summary.

    Args:
        model: Model URI (``sample://baseline`` trains the built-in sample baseline).
        data: Data URI.
        target: Target profile name or YAML file.
        techniques: Technique list or comma-separated string; ``auto`` = the target's plan.
        goals: Selection goals (kfedge.select.Goals fields).
        epochs: Fine-tune epochs (0 = technique defaults).
        calibration_samples: INT8 calibration samples (0 = default).
        latency_runs: Timed runs of each candidate's own evaluation (a rough figure; the
            side-by-side benchmark step's timings are the ones that decide).
        output_dir: Where the run directory and ``latest/`` go.
        deploy: Deploy and smoke-test the selected candidate (locally).
        quiet: Do not print progress.
        runner: ``subprocess`` (every step in this virtualenv) or ``docker`` (every step in
            the image the compiled YAML names: see :func:`docker_runner`).

    Returns:
        ``{"run_dir", "report", "timings", "selected", "selected_model", "deploy", "ok"}``
        (``timings``: the benchmark step's side-by-side timings, copied into ``latest/``).
    """
    from kfedge.provision import SAMPLE_MODEL_URI, plan_techniques
    from kfedge.select import Goals
    from kfedge.storage import exists
    from kfedge.targets import load_target
    from kfedge.uris import is_remote, local_path

    # Everything that can be checked cheaply is checked before kfp starts.
    tgt = load_target(target)
    plan = plan_techniques(techniques, tgt)
    goals = goals or {}
    try:
        Goals(**goals)
    except Exception as exc:  # pydantic ValidationError
        raise ConfigError(f"invalid goals {goals}: {exc}") from exc
    for uri, what in ((model, "model"), (data, "data")):
        if uri.startswith("sample://"):
            continue
        if is_remote(uri):
            if not exists(uri):
                raise NotFoundError(f"{what} not found: {uri}")
        elif not local_path(uri).exists():
            raise NotFoundError(f"{what} not found: {uri}")
    if model == SAMPLE_MODEL_URI and not data.startswith("sample://"):
        raise ConfigError("the sample baseline trains on the sample data; pass --model too")

    if runner not in ("subprocess", "docker"):
        raise ConfigError(f"runner must be 'subprocess' or 'docker', got {runner!r}")
    if runner == "docker":
        docker_preflight()  # before anything is written
    compat_kfp = __import__("kfedge.compat", fromlist=["require"]).require
    local = compat_kfp("kfp.local")
    from kfedge.pipelines.edge import edge_optimize, edge_optimize_deploy

    out = Path(output_dir).resolve()
    run_dir = out / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    if runner == "docker":
        model, data = (_stage_input(u, run_dir / "inputs") for u in (model, data))
        if Path(target).is_file():
            target = _stage_input(str(Path(target).resolve()), run_dir / "inputs")
        local.init(runner=docker_runner(local, run_dir), pipeline_root=str(run_dir))
    else:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir))
    pipeline = edge_optimize_deploy if deploy else edge_optimize
    params: dict[str, Any] = {
        "model_uri": model,
        "data_uri": data,
        "target": tgt.name if not Path(target).is_file() else str(Path(target).resolve()),
        "techniques": plan[1:],  # the FP32 reference is exported by its own step
        "goals_json": json.dumps(goals),
        "epochs": int(epochs),
        "calibration_samples": int(calibration_samples),
        "latency_runs": int(latency_runs),
    }
    if deploy:
        params["deploy_mode"] = "local"
    term = sys.stderr if quiet else sys.stdout
    if not quiet:
        print(f"kfedge run: {pipeline.name} on target {tgt.name}; techniques: {', '.join(plan)}")
        print(f"run directory: {run_dir}  (full log: {run_dir / 'run.log'})")
    with (run_dir / "run.log").open("w") as log:
        stream = ProgressStream(log, open("/dev/null", "w") if quiet else term)  # noqa: SIM115
        # kfp.local indents output by swapping builtins.print per task; its parallel loop
        # iterations can restore each other's swapped version, so it is put back here
        original_print = builtins.print
        try:
            with redirect_stdout(stream), redirect_stderr(stream), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # kfp.local's "no effect locally" notes
                pipeline(**params)
        except RuntimeError as exc:
            why = stream.error_lines[-1] if stream.error_lines else str(_ANSI.sub("", str(exc)))
            steps = ", ".join(dict.fromkeys(stream.failed)) or "a step"  # retries: once each
            raise KfedgeError(f"{steps} failed: {why} (log: {run_dir / 'run.log'})") from None
        finally:
            builtins.print = original_print
    report = _find(run_dir, "report_json")
    if report is None:
        raise KfedgeError(f"the run finished without a report (log: {run_dir / 'run.log'})")
    latest = out / "latest"
    if latest.exists():
        shutil.rmtree(latest)
    latest.mkdir(parents=True)
    # the report step's artifacts are files named after its outputs
    for artifact, name in (
        ("report_json", "report.json"),
        ("markdown", "report.md"),
        ("html", "report.html"),
    ):
        src = report.parent / artifact
        if src.is_file():
            shutil.copy2(src, latest / name)
    timings = _find(run_dir, "timings")  # the benchmark step's output artifact
    if timings is not None:
        shutil.copy2(timings, latest / "timings.json")
    report = latest / "report.json"
    data_json = json.loads(report.read_text())
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "report": str(latest / "report.json"),
        "timings": str(latest / "timings.json") if timings is not None else None,
        "selected": data_json.get("selected"),
        "selected_model": None,
        "deploy": None,
        "ok": True,
    }
    endpoint = _find(run_dir, "endpoint.json")
    if endpoint is not None:
        result["deploy"] = json.loads(endpoint.read_text())
        shutil.copy2(endpoint, latest / "endpoint.json")
    if data_json.get("selected"):
        # the select step's `chosen` output is a copy of the selected candidate directory
        chosen = [p.parent for p in run_dir.glob("*/select/chosen/candidate.json")]
        result["selected_model"] = str(chosen[0]) if chosen else None
    if not quiet:
        from kfedge.report import print_summary

        print()
        print(print_summary(data_json))
        print(f"\nreport: {latest / 'report.md'}\n        {(latest / 'report.html').as_uri()}")
        if result["deploy"]:
            d = result["deploy"]
            state = "passed" if d.get("passed") else "FAILED"
            print(f"deploy smoke test ({d.get('mode', 'local')}): {state} {d.get('detail', '')}")
        elif deploy and not data_json.get("selected"):
            print("deploy skipped: no candidate met the goals")
        if result["selected_model"]:
            print(
                f"serve it: kfedge serve {result['selected_model']} --name {data_json['selected']}"
            )
    return result
