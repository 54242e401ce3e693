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
        if self.log.closed:
            # a finished run's stream: kfp.local's logging handlers keep the sys.stdout they
            # were made under, so a later run in this process may still write here
            return len(s)
        self.log.write(s)
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._line(line)
        return len(s)

    def flush(self) -> None:  # noqa: D102
        if not self.log.closed:
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


def _start(
    runner: str, output_dir: str | Path, model: str, data: str, targets: list[str]
) -> tuple[Any, Path, str, str, list[str]]:
    """Check the inputs, make the run directory and initialise kfp.local.

    Returns:
        kfp.local, the run directory, and the model, data and targets as the steps see them
        (staged under the run directory for the docker runner).
    """
    from kfedge.provision import SAMPLE_MODEL_URI
    from kfedge.storage import exists
    from kfedge.uris import is_remote, local_path

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
    out = Path(output_dir).resolve()
    run_dir = out / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    targets = [str(Path(t).resolve()) if Path(t).is_file() else t for t in targets]
    if runner == "docker":
        model, data = (_stage_input(u, run_dir / "inputs") for u in (model, data))
        targets = [_stage_input(t, run_dir / "inputs") if Path(t).is_file() else t for t in targets]
        local.init(runner=docker_runner(local, run_dir), pipeline_root=str(run_dir))
    else:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir))
    return local, run_dir, model, data, targets


#: A report step's output artifacts (files named after its outputs) and their names in latest/.
_REPORT_FILES = (("report_json", "report.json"), ("markdown", "report.md"), ("html", "report.html"))


def _copy_report(step_dir: Path, dest: Path) -> None:
    """Copy a report step's JSON, Markdown and HTML artifacts into ``dest``."""
    for artifact, name in _REPORT_FILES:
        if (step_dir / artifact).is_file():
            shutil.copy2(step_dir / artifact, dest / name)


def _execute(pipeline: Any, params: dict[str, Any], run_dir: Path, quiet: bool) -> None:
    """Run a pipeline through the initialised kfp.local, progress to the terminal.

    Raises:
        KfedgeError: A step failed (its error line and the log's path).
    """
    term = sys.stderr if quiet else sys.stdout
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
    from kfedge.fleet import parse_targets

    if len(parse_targets(target)) > 1:
        return run_fleet_local(
            target, model, data, techniques, goals, epochs, calibration_samples, latency_runs,
            output_dir, quiet, runner, deploy,
        )  # fmt: skip
    from kfedge.provision import plan_techniques
    from kfedge.select import Goals, goals_for_target
    from kfedge.targets import load_target

    # Everything that can be checked cheaply is checked before kfp starts.
    tgt = load_target(target)
    plan = plan_techniques(techniques, tgt)
    per_target = set((goals or {}).get("targets") or {})
    if per_target - {target, tgt.name}:
        raise ConfigError(f"goals name target(s) {sorted(per_target)}; this run's is {target}")
    goals = goals_for_target(goals or {}, target if target in per_target else tgt.name)
    try:
        Goals(**goals)
    except Exception as exc:  # pydantic ValidationError
        raise ConfigError(f"invalid goals {goals}: {exc}") from exc
    local, run_dir, model, data, (target,) = _start(runner, output_dir, model, data, [target])
    from kfedge.pipelines.edge import edge_optimize, edge_optimize_deploy

    pipeline = edge_optimize_deploy if deploy else edge_optimize
    params: dict[str, Any] = {
        "model_uri": model,
        "data_uri": data,
        "target": target if Path(target).is_file() else tgt.name,
        "techniques": plan[1:],  # the FP32 reference is exported by its own step
        "goals_json": json.dumps(goals),
        "epochs": int(epochs),
        "calibration_samples": int(calibration_samples),
        "latency_runs": int(latency_runs),
    }
    if deploy:
        params["deploy_mode"] = "local"
    out = Path(output_dir).resolve()
    if not quiet:
        print(f"kfedge run: {pipeline.name} on target {tgt.name}; techniques: {', '.join(plan)}")
        print(f"run directory: {run_dir}  (full log: {run_dir / 'run.log'})")
    _execute(pipeline, params, run_dir, quiet)
    report = _find(run_dir, "report_json")
    if report is None:
        raise KfedgeError(f"the run finished without a report (log: {run_dir / 'run.log'})")
    latest = out / "latest"
    if latest.exists():
        shutil.rmtree(latest)
    latest.mkdir(parents=True)
    _copy_report(report.parent, latest)
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


def run_fleet_local(
    targets: str | list[str],
    model: str = "sample://baseline",
    data: str = "sample://digits",
    techniques: str | list[str] = "auto",
    goals: dict[str, Any] | None = None,
    epochs: int = 0,
    calibration_samples: int = 0,
    latency_runs: int = 30,
    output_dir: str | Path = "local_outputs",
    quiet: bool = False,
    runner: str = "subprocess",
    deploy: bool = True,
) -> dict[str, Any]:
    """Run edge-fleet through kfp.local: every target measured here, each deployed locally.

    Args:
        targets: Target names or YAML files, a list or comma-separated.
        model: Model URI.
        data: Data URI.
        techniques: Technique list or comma-separated string; ``auto`` = each target's plan.
        goals: Goals with per-target overrides under ``targets``.
        epochs: Fine-tune epochs (0 = technique defaults).
        calibration_samples: INT8 calibration samples (0 = default).
        latency_runs: Timed runs of each candidate's own evaluation (a rough figure).
        output_dir: Where the run directory and ``latest/`` go.
        quiet: Do not print progress.
        runner: ``subprocess`` or ``docker`` (as :func:`run_local`).
        deploy: Deploy and smoke-test each target's choice (False: stop after the reports).

    Returns:
        ``{"run_dir", "report", "targets": {name: {"report", "selected", "deploy"}}, "ok"}``;
        ``latest/`` holds the fleet report and a directory per target (its report,
        timings and endpoint.json).
    """
    from kfedge.fleet import parse_targets, plan_fleet

    names = parse_targets(targets)
    requested = techniques.split(",") if isinstance(techniques, str) else list(techniques)
    requested = [t.strip() for t in requested if t.strip() and t.strip() != "auto"]
    spec = plan_fleet(names, requested, epochs or None, calibration_samples or None, goals)
    local, run_dir, model, data, names = _start(runner, output_dir, model, data, names)
    from kfedge.pipelines.fleet import edge_fleet

    params: dict[str, Any] = {
        "model_uri": model,
        "data_uri": data,
        "targets": names,
        "techniques": requested,
        "goals_json": json.dumps(goals or {}),
        "epochs": int(epochs),
        "calibration_samples": int(calibration_samples),
        "latency_runs": int(latency_runs),
        "deploy_mode": "local",
        "deploy_chosen": bool(deploy),
    }
    if not quiet:
        print(f"kfedge run: edge-fleet on {', '.join(spec['targets'])}")
        for n, t in spec["targets"].items():
            print(f"  {n}: {t['baseline']} + {', '.join(t['candidates']) or 'nothing else'}")
        print(f"run directory: {run_dir}  (full log: {run_dir / 'run.log'})")
    _execute(edge_fleet, params, run_dir, quiet)
    fleet = [p for p in run_dir.glob("**/fleet-report/report_json") if p.is_file()]
    if not fleet:
        raise KfedgeError(f"the run finished without a fleet report (log: {run_dir / 'run.log'})")
    latest = Path(output_dir).resolve() / "latest"
    if latest.exists():
        shutil.rmtree(latest)
    latest.mkdir(parents=True)
    _copy_report(fleet[0].parent, latest)
    per: dict[str, dict[str, Any]] = {}
    for rep in run_dir.glob("**/decide/report_json"):
        data_json = json.loads(rep.read_text())
        name = data_json["target"]
        dest = latest / name
        dest.mkdir(exist_ok=True)
        _copy_report(rep.parent, dest)
        timings = rep.parent.parent / "measure" / "timings"
        if timings.is_file():
            shutil.copy2(timings, dest / "timings.json")
        per[name] = {
            "report": str(dest / "report.json"),
            "selected": data_json.get("selected"),
            "deploy": None,
        }
    for ep in run_dir.glob("**/deploy/endpoint/endpoint.json"):
        got = json.loads(ep.read_text())
        if got.get("target") in per:
            per[got["target"]]["deploy"] = got
            shutil.copy2(ep, latest / got["target"] / "endpoint.json")
    ok = all(p["deploy"] is None or p["deploy"].get("passed") for p in per.values())
    result = {"run_dir": str(run_dir), "report": str(latest / "report.json"), "targets": per}
    result["ok"] = ok
    if not quiet:
        print()
        print((latest / "report.md").read_text().split("\n## Every candidate")[0].strip())
        print(f"\nreport: {latest / 'report.md'}\n        {(latest / 'report.html').as_uri()}")
        for n, p in per.items():
            d = p["deploy"]
            if d:
                state = "passed" if d.get("passed") else "FAILED"
                mode = d.get("mode", "local")
                print(f"{n}: deploy smoke test ({mode}): {state} {d.get('detail', '')}")
            elif not deploy:
                print(f"{n}: not deployed (--no-deploy)")
            else:
                print(f"{n}: deploy skipped: no candidate met its goals")
    return result
