"""Section: wall time of ``kfedge run`` with defaults (what ``make run`` does), measured once.

The issue's budget: at most 15 minutes on 2 cores, goal 10.
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


def run(
    out_dir: Path, timeout_s: float = 20 * 60, extra_args: list[str] | None = None
) -> dict[str, Any]:
    """Run ``kfedge run --output-dir out_dir`` once and time it.

    Returns:
        ``{"command", "seconds", "returncode", "selected", "ok", "budget_s", "goal_s",
        "tail"}``; ``selected`` is read from ``latest/report.json`` where the run wrote one.
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
    selected = None
    report = out_dir / "latest" / "report.json"
    if report.is_file():
        try:
            rep = json.loads(report.read_text())
            selected = rep.get("selected") or rep.get("selection", {}).get("selected")
        except (json.JSONDecodeError, AttributeError):
            selected = None
    lines = [ln for ln in out.splitlines() if ln.strip()]
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "command": "kfedge run" + "".join(f" {a}" for a in extra_args or []),
        "seconds": seconds,
        "returncode": rc,
        "ok": rc == 0,
        "selected": selected,
        "budget_s": BUDGET_S,
        "goal_s": GOAL_S,
        "tail": lines[-8:],
    }
