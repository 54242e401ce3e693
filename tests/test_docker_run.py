"""``kfedge run --runner docker``: every step in the image the compiled YAML gives it.

kfp.local's DockerRunner runs each component in its ``base_image``: the component image for
provision, export, optimize, report, select and deploy; the serving image for the steps pinned
to the edge node (evaluate, benchmark). The run must end with the report the subprocess runner
gives (same candidates, same accuracy), as the images' non-root user.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dockerkit import require_image

from kfedge._version import COMPONENT_IMAGE, SERVING_IMAGE
from kfedge.errors import ConfigError
from kfedge.local_run import run_local

TECHNIQUES = ["ptq-int8"]


def _run(runner: str, out: Path) -> dict:
    return run_local(
        techniques=",".join(TECHNIQUES),
        goals={"max_accuracy_drop": 0.02, "objective": "latency"},
        latency_runs=30,
        output_dir=out,
        quiet=True,
        runner=runner,
    )


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_image("component")
    require_image("serving")
    return _run("docker", tmp_path_factory.mktemp("docker-run"))


@pytest.fixture(scope="module")
def subprocess_run(docker_run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run("subprocess", tmp_path_factory.mktemp("subprocess-run"))


@pytest.mark.e2e
@pytest.mark.slow
def test_each_step_ran_in_its_image(docker_run: dict) -> None:
    log = re.sub(r"\x1b\[[0-9;]*m", "", (Path(docker_run["run_dir"]) / "run.log").read_text())
    # kfp.local prints "Executing task 'NAME'" then, from the DockerRunner, "Found image 'REF'"
    found = re.findall(
        r"Executing task '?([\w\-]+)'?\s*\n(?:.*\n){0,3}?.*Found image '([^']+)'", log
    )
    images = dict(found)
    assert images, log[-2000:]
    for task, image in images.items():
        want = SERVING_IMAGE if task.startswith(("evaluate", "benchmark")) else COMPONENT_IMAGE
        assert image == want, (task, image)
    assert {"provision", "benchmark", "report"} <= {t.split("-")[0] for t in images}


@pytest.mark.e2e
@pytest.mark.slow
def test_docker_run_reports_what_the_subprocess_run_reports(
    docker_run: dict, subprocess_run: dict
) -> None:
    a = json.loads(Path(docker_run["report"]).read_text())
    b = json.loads(Path(subprocess_run["report"]).read_text())
    assert sorted(c["name"] for c in a["candidates"]) == sorted(c["name"] for c in b["candidates"])
    acc_a = {c["name"]: c["accuracy"] for c in a["candidates"]}
    acc_b = {c["name"]: c["accuracy"] for c in b["candidates"]}
    assert acc_a == acc_b
    assert a["selected"] and docker_run["deploy"]["passed"] is True
    for cand in a["candidates"]:
        assert cand["latency_ms"]["p50"] > 0, cand["name"]


@pytest.mark.e2e
@pytest.mark.slow
def test_docker_run_files_belong_to_a_non_root_user(docker_run: dict) -> None:
    owners = {p.stat().st_uid for p in Path(docker_run["run_dir"]).rglob("*")}
    assert 0 not in owners or os.getuid() == 0 and owners == {10001} | ({0} & owners)
    written = [p for p in Path(docker_run["run_dir"]).rglob("report_json")]
    assert written and all(p.stat().st_uid != 0 for p in written)


def test_docker_daemon_down_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}
    out = tmp_path / "out"
    res = subprocess.run(
        [
            str(Path(sys.executable).with_name("kfedge")),
            "run",
            "--runner",
            "docker",
            "--output-dir",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not reachable" in lines[0] and "dockerd" in lines[0], lines
    assert not out.exists()


def test_missing_image_says_make_images_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kfedge.images

    monkeypatch.setattr(kfedge.images, "docker_problem", lambda docker="docker": None)
    monkeypatch.setattr(kfedge.images, "image_present", lambda ref, docker="docker": None)
    with pytest.raises(ConfigError, match=r"no image .*kfedge-serving.*make images"):
        run_local(techniques="ptq-int8", output_dir=tmp_path / "out", runner="docker", quiet=True)
    assert not (tmp_path / "out").exists()
