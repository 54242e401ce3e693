"""Section: ``kfedge run`` with defaults (what ``make run`` does), run several times.

Each run's wall time is checked against the budget (at most 15 minutes on 2 cores, goal 10),
and the runs' selections against each other: on one machine, repeated runs must deploy the
same candidate, or candidates that the reports themselves call tied (the same latency tier:
their difference is inside the measured noise, see :func:`kfedge.ranking.rank`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, child_env, log

#: The issue's budget and goal for ``make run`` (seconds).
BUDGET_S = 15 * 60
GOAL_S = 10 * 60


def kfedge_command() -> list[str]:
    """The ``kfedge`` console script of this interpreter's environment (else ``-m kfedge.cli``)."""
    script = Path(sys.executable).with_name("kfedge")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "kfedge.cli"]


def tied_with_selected(report: dict[str, Any]) -> list[str]:
    """The candidates a report puts in the selected candidate's latency tier (itself included).

    Only candidates that passed the goals count: a tier-mate that failed one could not have
    been deployed instead.
    """
    rows = report.get("candidates") or []
    sel = next((r for r in rows if r.get("selected")), None)
    if sel is None or sel.get("latency_tier") is None:
        return [report["selected"]] if report.get("selected") else []
    return sorted(
        r["name"]
        for r in rows
        if r.get("latency_tier") == sel["latency_tier"] and r.get("passed_goals")
    )


def run_once(
    out_dir: Path, timeout_s: float = 20 * 60, extra_args: list[str] | None = None
) -> dict[str, Any]:
    """Run ``kfedge run --output-dir out_dir`` once and time it.

    Returns:
        ``{"command", "seconds", "returncode", "selected", "tied", "ok", "tail"}``;
        ``selected`` and ``tied`` (:func:`tied_with_selected`) are read from
        ``latest/report.json`` where the run wrote one.
    """
    cmd = [*kfedge_command(), "run", "--output-dir", str(out_dir), *(extra_args or [])]
    log(f"timing: {' '.join(cmd)}")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
        )
        rc, out = proc.returncode, (proc.stdout or "") + (proc.stderr or "")
    except subprocess.TimeoutExpired as exc:
        rc, out = None, f"timed out after {timeout_s:.0f} s: {exc}"
    seconds = time.perf_counter() - t0
    selected, tied = None, []
    report = out_dir / "latest" / "report.json"
    if report.is_file():
        try:
            rep = json.loads(report.read_text())
            selected = rep.get("selected") or rep.get("selection", {}).get("selected")
            tied = tied_with_selected(rep)
        except (json.JSONDecodeError, AttributeError, KeyError):
            selected, tied = None, []
    lines = [ln for ln in out.splitlines() if ln.strip()]
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "command": "kfedge run" + "".join(f" {a}" for a in extra_args or []),
        "seconds": seconds,
        "returncode": rc,
        "ok": rc == 0,
        "selected": selected,
        "tied": tied,
        "tail": lines[-8:],
    }


def consistency(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether repeated runs deployed the same candidate, or candidates their reports tie.

    Two runs agree when they selected the same candidate, or when each one's report puts the
    other's selection in its selected candidate's tier.

    Returns:
        ``{"selected": [...], "same": bool, "agree": bool, "disagreeing": [[i, j], ...]}``
        (run indices from 1).
    """
    sel = [r.get("selected") for r in runs]
    bad = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a, b = runs[i], runs[j]
            if a.get("selected") == b.get("selected"):
                continue
            if b.get("selected") in a.get("tied", []) and a.get("selected") in b.get("tied", []):
                continue
            bad.append([i + 1, j + 1])
    return {
        "selected": sel,
        "same": len(set(sel)) == 1 and sel[0] is not None,
        "agree": not bad and all(s is not None for s in sel),
        "disagreeing": bad,
    }


def run(
    out_dir: Path,
    repeats: int = 3,
    timeout_s: float = 20 * 60,
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``kfedge run`` ``repeats`` times, one after the other, on this machine.

    Returns:
        ``{"runs": [run_once results], "budget_s", "goal_s", "consistency"}``.
    """
    runs = []
    for i in range(repeats):
        log(f"make run {i + 1}/{repeats}")
        runs.append(run_once(out_dir / f"run-{i + 1}", timeout_s, extra_args))
    return {
        "runs": runs,
        "budget_s": BUDGET_S,
        "goal_s": GOAL_S,
        "consistency": consistency(runs),
    }
