"""``python -m controlplane up|down|build [--dir DIR]``: a control plane for people.

``up`` starts one in the background and prints the kubeconfig to use; ``down`` stops it;
``build`` only builds (or finds) the programs and prints their directory and build times.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from controlplane import build
from controlplane.plane import ControlPlane


def _serve(workdir: Path) -> int:
    plane = ControlPlane(workdir)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        plane.start()
    except RuntimeError as exc:
        (workdir / "failed").write_text(str(exc))
        return 1
    (workdir / "ready").write_text(json.dumps({"server": plane.server, **plane.timings}))
    while not stopping:
        time.sleep(0.5)
    plane.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m controlplane", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "build", "serve"])
    parser.add_argument("--dir", default=".cluster", help="working directory (default .cluster)")
    args = parser.parse_args(argv)
    workdir = Path(args.dir).resolve()
    pidfile = workdir / "pid"
    if args.command == "build":
        built = build.ensure_built()
        print(built)
        print((built / "manifest.json").read_text())
        return 0
    if args.command == "serve":
        return _serve(workdir)
    if args.command == "down":
        if not pidfile.is_file():
            print(f"no control plane runs from {workdir}")
            return 0
        pid = int(pidfile.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            while True:
                os.kill(pid, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            pass
        pidfile.unlink()
        print("control plane stopped")
        return 0
    if pidfile.is_file():
        print(f"a control plane already runs from {workdir} (make cluster-down first)")
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    for marker in ("ready", "failed"):
        (workdir / marker).unlink(missing_ok=True)
    log = open(workdir / "controlplane.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--dir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pidfile.write_text(str(proc.pid))
    while proc.poll() is None and not (workdir / "ready").exists():
        time.sleep(0.5)
    if not (workdir / "ready").exists():
        pidfile.unlink(missing_ok=True)
        failed = workdir / "failed"
        print(failed.read_text() if failed.exists() else (workdir / "controlplane.log").read_text())
        return 1
    print(f"control plane up: export KUBECONFIG={workdir / 'admin.kubeconfig'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
