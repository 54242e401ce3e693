"""``kfedge submit``: parameter parsing and checks before any network, and the upload/run
sequence that the real ``kfp.Client`` sends to a FAKE Kubeflow Pipelines API.

The fake (``fake_apis.FakeKfpApi``) is a small HTTP server on 127.0.0.1 that implements the few
KFP v2beta1 REST endpoints kfp.Client calls (healthz, pipelines list/upload, pipeline versions,
experiments, runs create/get, recurring runs) and records every request. No test here runs
anything on a real cluster; they check what kfedge and kfp.Client send and how answers and
failures are handled.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_apis import fake_kfp_fixture  # noqa: F401 (registers the fake_kfp fixture)

from kfedge.errors import ConfigError, KfedgeError, NotFoundError
from kfedge.submit import load_pipeline_spec, parse_params, pipeline_path, prepare_params, submit
from kfedge.techniques import get_technique


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoNetworkClient:
    """A client that fails the test if anything tries to talk to the server."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"submit contacted the server ({name}) before refusing bad input")


# --------------------------------------------------------------------------- parse_params


def test_parse_params_json_values_strings_and_lists():
    got = parse_params(
        [
            "epochs=3",
            "latency_runs=2.5",
            'goals_json={"max_latency_ms": 5, "objective": "size"}',
            "target=cpu-arm64",
            "techniques=ptq-int8, prune",
            'model_uris=["s3://b/a.tflite"]',
            "s3_endpoint=http://seaweedfs:8333/x=y",
            "deploy_mode=",
            "flag=true",
        ]
    )
    assert got == {
        "epochs": 3,
        "latency_runs": 2.5,
        "goals_json": {"max_latency_ms": 5, "objective": "size"},
        "target": "cpu-arm64",
        "techniques": ["ptq-int8", "prune"],
        "model_uris": ["s3://b/a.tflite"],
        "s3_endpoint": "http://seaweedfs:8333/x=y",  # split at the first "=" only
        "deploy_mode": "",
        "flag": True,
    }
    assert parse_params(["model_uris=s3://b/a.tflite,s3://b/b.onnx"]) == {
        "model_uris": ["s3://b/a.tflite", "s3://b/b.onnx"]
    }
    assert parse_params([]) == {}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["target"], "pipeline parameter 'target' is not KEY=VALUE"),
        (["=cpu-amd64"], "is not KEY=VALUE"),
        (["epochs=1", "epochs=2"], "pipeline parameter 'epochs' is given twice"),
    ],
)
def test_parse_params_refuses_bad_items(items: list[str], message: str):
    with pytest.raises(ConfigError, match=message):
        parse_params(items)


# --------------------------------------------------------------------------- checks before network


def _spec(name: str = "edge-optimize-deploy") -> dict[str, Any]:
    return load_pipeline_spec(pipeline_path(name))


def test_unknown_parameter_refused_before_any_network():
    with pytest.raises(ConfigError) as info:
        submit(params={"bogus": 1, "target": "cpu-amd64"}, client=NoNetworkClient())
    msg = str(info.value)
    assert "unknown parameter(s) bogus for pipeline edge-optimize-deploy" in msg
    accepted = _spec()["root"]["inputDefinitions"]["parameters"]
    for name in accepted:
        assert name in msg
    # edge-evaluate has other parameters: deploy_mode is not one of them
    with pytest.raises(ConfigError, match="unknown parameter.*deploy_mode.*edge-evaluate"):
        submit("edge-evaluate", params={"deploy_mode": "local"}, client=NoNetworkClient())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"epochs": "three"},
            "parameter 'epochs' of pipeline edge-optimize-deploy is NUMBER_INTEGER",
        ),
        ({"epochs": True}, "is NUMBER_INTEGER; got True"),
        ({"techniques": {"a": 1}}, "techniques must be a list of technique names"),
        ({"model_uri": None}, "got null"),
        ({"target": "jetson-nano"}, "unknown target 'jetson-nano'; available:"),
        ({"techniques": ["sparsify"]}, "unknown technique"),
        (
            {"target": "coral-edgetpu", "techniques": "ptq-dynamic"},
            "target coral-edgetpu cannot run .*ptq-dynamic quantizes to dynamic",
        ),
        ({"goals_json": "{not json"}, "goals must be a JSON object"),
        ({"goals_json": {"max_accuracy_drop": -1}}, "invalid goals"),
        ({"goals_json": {"objective": "beauty"}}, "invalid goals"),
    ],
)
def test_bad_parameters_refused_before_any_network(params: dict[str, Any], message: str):
    with pytest.raises((ConfigError, NotFoundError), match=message):
        submit(params=params, client=NoNetworkClient())


def test_required_parameters_and_unknown_pipeline(tmp_path: Path):
    with pytest.raises(
        ConfigError, match="edge-evaluate needs parameter.*baseline_uri.*model_uris"
    ):
        submit("edge-evaluate", client=NoNetworkClient())
    with pytest.raises(NotFoundError, match="neither one of edge-optimize-deploy"):
        submit("edge-optimise", client=NoNetworkClient())
    bad = tmp_path / "p.yaml"
    bad.write_text("just: a mapping\n")
    with pytest.raises(ConfigError, match="is not a compiled KFP pipeline"):
        submit(str(bad), client=NoNetworkClient())


@pytest.mark.parametrize("target", ["coral-edgetpu", "cpu-arm64", "nvidia-gpu", "intel-npu"])
def test_auto_techniques_follow_the_target(target: str):
    from kfedge.provision import baseline_technique, plan_techniques
    from kfedge.targets import load_target

    tgt = load_target(target)
    for techniques in (None, "auto", ["auto"]):
        params = {"target": target} | ({} if techniques is None else {"techniques": techniques})
        sent = prepare_params(_spec(), params)
        assert sent["techniques"] == plan_techniques("auto", tgt)[1:]
        # the FP32 reference is exported separately, never a ParallelFor branch
        assert baseline_technique(list(tgt.formats)) not in sent["techniques"]
        for t in sent["techniques"]:
            fmt, mode = get_technique(t).output
            assert fmt in tgt.formats and mode in tgt.quantization, (target, t)
    if target == "coral-edgetpu":
        assert sent["techniques"]
        assert {get_technique(t).output for t in sent["techniques"]} == {("tflite", "int8")}


def test_params_typed_and_completed():
    sent = prepare_params(
        _spec(),
        {
            "target": "cpu-arm64",
            "techniques": "ptq-int8,fp32-tflite,prune",
            "epochs": 2.0,
            "goals_json": {"max_accuracy_drop": 0.01, "objective": "size"},
        },
    )
    assert sent == {
        "target": "cpu-arm64",
        "techniques": ["ptq-int8", "prune"],  # the FP32 reference is not a branch
        "epochs": 2,
        "goals_json": json.dumps({"max_accuracy_drop": 0.01, "objective": "size"}),
    }
    # without target / techniques the pipeline's own defaults stand (nothing added)
    assert prepare_params(_spec(), {"latency_runs": 50}) == {"latency_runs": 50}
    assert isinstance(prepare_params(_spec(), {"s3_secret": 123})["s3_secret"], str)


# --------------------------------------------------------------------------- against the fake API


def test_fake_kfp_first_upload_creates_pipeline_experiment_and_run(fake_kfp):
    api, host = fake_kfp
    api.run_states = ["RUNNING", "SUCCEEDED"]
    res = submit(
        host=host,
        experiment="edge-tests",
        run_name="coral run",
        params={"target": "coral-edgetpu", "epochs": 1},
        poll_seconds=0.05,
    )
    assert api.calls() == [
        "GET /apis/v2beta1/healthz",  # kfedge's quick check
        "GET /apis/v2beta1/healthz",  # kfp.Client's own (single-user: no namespace)
        "GET /apis/v2beta1/pipelines",
        "POST /apis/v2beta1/pipelines/upload",
        "GET /apis/v2beta1/pipelines/pipeline-1/versions",
        "GET /apis/v2beta1/experiments",
        "POST /apis/v2beta1/experiments",
        "POST /apis/v2beta1/runs",
        "GET /apis/v2beta1/runs/run-4",
        "GET /apis/v2beta1/runs/run-4",
    ]
    upload = api.requests[3]
    assert upload.query["name"] == "edge-optimize-deploy"
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert pipeline_path("edge-optimize-deploy").read_bytes() in api.uploads[0]
    assert api.requests[4].query == {
        "page_size": "1",
        "sort_by": "created_at desc",
    }
    assert api.requests[6].json["display_name"] == "edge-tests"
    run_body = api.requests[7].json
    assert run_body["display_name"] == "coral run"
    assert run_body["experiment_id"] == "experiment-3"
    assert run_body["pipeline_version_reference"] == {
        "pipeline_id": "pipeline-1",
        "pipeline_version_id": "version-2",
    }
    assert run_body["runtime_config"]["parameters"] == {
        "target": "coral-edgetpu",
        "epochs": 1,
        "techniques": ["ptq-int8", "qat-int8", "prune-cluster-int8"],
    }
    assert all(r.headers.get("authorization") is None for r in api.requests)
    assert res == {
        "run_id": "run-4",
        "run_url": f"{host}/#/runs/details/run-4",
        "pipeline_id": "pipeline-1",
        "pipeline_name": "edge-optimize-deploy",
        "version_id": "version-2",
        "version_name": "edge-optimize-deploy",
        "experiment_id": "experiment-3",
        "state": "SUCCEEDED",
        "params": run_body["runtime_config"]["parameters"],
    }


def test_fake_kfp_existing_pipeline_gets_a_new_version_and_experiment_is_reused(
    fake_kfp, monkeypatch: pytest.MonkeyPatch
):
    api, host = fake_kfp
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", host + "/")  # host from kfp's variable
    monkeypatch.setenv("KF_PIPELINES_UI_ENDPOINT", "https://kubeflow.example.com/pipeline")
    first = submit(params={}, wait=False)
    assert first["state"] == "PENDING"
    n = len(api.requests)
    second = submit(version_name="v2-arm", params={"target": "cpu-arm64"}, wait=False)
    later = api.requests[n:]
    assert [f"{r.method} {r.path}" for r in later] == [
        "GET /apis/v2beta1/healthz",
        "GET /apis/v2beta1/healthz",
        "GET /apis/v2beta1/pipelines",
        "POST /apis/v2beta1/pipelines/upload_version",
        "GET /apis/v2beta1/experiments",
        "POST /apis/v2beta1/runs",
    ]
    assert later[3].query == {"name": "v2-arm", "pipelineid": first["pipeline_id"]}
    assert second["pipeline_id"] == first["pipeline_id"]
    assert second["version_id"] != first["version_id"] and second["version_name"] == "v2-arm"
    assert second["experiment_id"] == first["experiment_id"]
    assert second["run_url"] == (
        f"https://kubeflow.example.com/pipeline/#/runs/details/{second['run_id']}"
    )
    assert len(api.pipelines) == 1 and len(api.experiments) == 1 and len(api.runs) == 2
    run_name = api.runs[second["run_id"]]["display_name"]
    assert run_name.startswith("edge-optimize-deploy 20")  # name + UTC time by default
    # without a version name, the new version is named after the pipeline and the time
    third = submit(params={}, wait=False)
    assert third["version_name"].startswith("edge-optimize-deploy-20")


def test_fake_kfp_token_sent_but_never_printed(fake_kfp, monkeypatch, capsys):
    api, host = fake_kfp
    api.require_token = "s3cr3t-t0ken"
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "wrong-token")
    with pytest.raises(KfedgeError) as info:
        submit(host=host, wait=False)
    msg = str(info.value)
    assert "HTTP 401" in msg and host in msg and "KF_PIPELINES_TOKEN" in msg
    assert "wrong-token" not in msg
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "s3cr3t-t0ken")
    res = submit(host=host, wait=False)
    assert res["run_id"] in api.runs
    assert {r.headers.get("authorization") for r in api.requests[1:]} == {"Bearer s3cr3t-t0ken"}
    out, err = capsys.readouterr()
    assert "s3cr3t" not in out + err and "wrong-token" not in out + err


def test_fake_kfp_in_pod_service_account_token(fake_kfp, monkeypatch, tmp_path: Path):
    """Inside a Kubeflow pod kfp reads the projected token file; kfedge passes it on."""
    api, host = fake_kfp
    api.require_token = "projected-sa-token"
    token_file = tmp_path / "token"
    token_file.write_text("projected-sa-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    res = submit(host=host, wait=False)
    assert res["run_id"] in api.runs
    assert {r.headers.get("authorization") for r in api.requests} == {"Bearer projected-sa-token"}


def test_fake_kfp_multi_user_needs_namespace(fake_kfp):
    api, host = fake_kfp
    api.multi_user = True
    with pytest.raises(ConfigError, match="multi-user: pass --namespace"):
        submit(host=host, wait=False)
    res = submit(host=host, namespace="team-a", experiment="e", wait=False)
    exp = api.experiments[res["experiment_id"]]
    assert exp["namespace"] == "team-a"
    listed = [r for r in api.requests if r.path == "/apis/v2beta1/experiments"][0]
    assert listed.query["namespace"] == "team-a"
    # the pipeline is the profile's own, not shared with every profile
    (pipeline,) = api.pipelines.values()
    assert pipeline["namespace"] == "team-a"
    upload = next(r for r in api.requests if r.path == "/apis/v2beta1/pipelines/upload")
    assert upload.query["namespace"] == "team-a"
    # the next submit finds it in that namespace and adds a version
    again = submit(host=host, namespace="team-a", experiment="e", wait=False)
    assert again["pipeline_id"] == res["pipeline_id"] and len(api.pipelines) == 1
    assert len(api.versions[res["pipeline_id"]]) == 2


def test_fake_kfp_failed_run_and_server_errors(fake_kfp):
    api, host = fake_kfp
    api.run_states = ["FAILED"]
    with pytest.raises(KfedgeError) as info:
        submit(host=host, poll_seconds=0.01)
    msg = str(info.value)
    assert "ended in state FAILED: evaluate on target: OOMKilled" in msg
    assert f"{host}/#/runs/details/" in msg
    res = submit(host=host, poll_seconds=0.01, check=False)
    assert res["state"] == "FAILED"
    api.run_states = ["RUNNING"]
    with pytest.raises(KfedgeError, match="did not finish within 0.2 s; follow it at http"):
        submit(host=host, timeout=0.2, poll_seconds=0.05)
    # a host that is not the KFP API
    with pytest.raises(KfedgeError, match="does not serve the Kubeflow Pipelines API"):
        submit(host=host + "/not-kfp", wait=False)


def test_unreachable_host_one_line_error_naming_it(capsys: pytest.CaptureFixture[str]):
    host = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(KfedgeError) as info:
        submit(host=host, params={"target": "cpu-amd64"})
    assert time.monotonic() - start < 10
    msg = str(info.value)
    assert msg.startswith(f"cannot reach Kubeflow Pipelines at {host}: connection refused")
    assert "\n" not in msg
    # and through the CLI: one line on stderr, exit code 2, nothing on stdout
    res = _run_cli("submit", "--host", host, "-p", "target=cpu-amd64")
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"kfedge submit: error: {msg}"]


def test_no_endpoint_known_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for var in ("KF_PIPELINES_ENDPOINT", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="no Kubeflow Pipelines endpoint: pass --host or set"):
        submit(params={"target": "cpu-arm64"})


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kfedge.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_submit_unknown_parameter_exit_2_before_network():
    # no host is given and none is configured: the unknown name must be refused first
    res = _run_cli("submit", "-p", "bogus=1")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(
        "kfedge submit: error: unknown parameter(s) bogus for pipeline edge-optimize-deploy; "
        "accepted: "
    )
    assert "target (STRING)" in lines[0] and "techniques (LIST)" in lines[0]
    help_res = _run_cli("submit", "--help")
    assert help_res.returncode == 0 and "--param" in help_res.stdout


def test_cli_submit_prints_json_result_only_on_stdout(fake_kfp, tmp_path: Path):
    api, host = fake_kfp
    res = _run_cli(
        "submit", "--host", host, "--pipeline", "edge-optimize", "-p", "target=cpu-arm64"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # kfp.Client's "Run details" links go to stderr
    assert out["state"] == "SUCCEEDED" and out["pipeline_name"] == "edge-optimize"
    assert "Run details:" in res.stderr
    assert list(api.runs) == [out["run_id"]]


def test_user_pipeline_yaml(fake_kfp, tmp_path: Path):
    """A user's compiled YAML: its own name and parameters are used."""
    api, host = fake_kfp
    docs = list(yaml.safe_load_all(pipeline_path("edge-evaluate").read_text()))
    docs[0]["pipelineInfo"]["name"] = "my-eval"
    mine = tmp_path / "my-eval.yaml"
    mine.write_text(yaml.safe_dump_all(docs))
    res = submit(
        str(mine),
        host=host,
        params={
            "baseline_uri": "s3://b/base.tflite",
            "model_uris": "s3://b/a.tflite,s3://b/b.onnx",
        },
        wait=False,
    )
    assert res["pipeline_name"] == "my-eval"
    sent = api.runs[res["run_id"]]["runtime_config"]["parameters"]
    assert sent == {
        "baseline_uri": "s3://b/base.tflite",
        "model_uris": ["s3://b/a.tflite", "s3://b/b.onnx"],
    }


def test_cli_submit_failed_run_exits_1_with_the_run_link(fake_kfp):
    api, host = fake_kfp
    api.run_states = ["FAILED"]
    res = _run_cli("submit", "--host", host, "-p", "target=cpu-amd64")
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["state"] == "FAILED"
    assert f"ended FAILED: {host}/#/runs/details/{out['run_id']}" in res.stderr
