"""kfedge.deploy: InferenceService objects, create/wait/smoke-test, local deploy, the component.

No cluster is available here. The create / wait / smoke-test sequence runs against a FAKE
Kubernetes API (a small HTTP server on 127.0.0.1 implementing get / create / patch of
inferenceservices, reached through a kubeconfig), which records what it was sent; tests using
it say "fake" in their names. None of them claims a real cluster deployment happened.
"""

import functools
import json
import logging
import re
import shutil
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from fake_apis import FakeKServe, crd_validator

pytest.importorskip("kserve")

from kfedge.deploy import (  # noqa: E402
    DeployError,
    build_inference_service,
    cluster_configured,
    deploy,
    deploy_candidate,
    deploy_from_files,
    deploy_local,
    isvc_name,
    local_server,
    smoke_test,
)
from kfedge.errors import ConfigError  # noqa: E402

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"


def test_crd_schema_refuses_misspelled_fields(reference_dir) -> None:  # noqa: ANN001
    """The schema check is as strict as the API server under fieldValidation=Strict (which
    deploy sends): unknown fields are refused, not accepted (the real API server's behaviour
    is checked in tests/test_cluster.py)."""
    validator = crd_validator(reference_dir, "serving.kserve.io_inferenceservices.yaml", "v1beta1")
    isvc = build_inference_service("digits", "s3://models/digits", "cpu-arm64")
    pred = isvc["spec"]["predictor"]
    pred["nodeSelektor"] = pred.pop("nodeSelector")
    pred["model"]["storageURI"] = pred["model"].pop("storageUri")
    messages = " ".join(e.message for e in validator.iter_errors(isvc))
    assert "nodeSelektor" in messages and "storageURI" in messages


@pytest.mark.parametrize("target", ["cpu-arm64", "nvidia-jetson", "coral-edgetpu"])
def test_isvc_from_target_fits_crd_and_carries_placement(target: str, reference_dir) -> None:  # noqa: ANN001
    from kfedge.targets import load_target

    tgt = load_target(target)
    isvc = build_inference_service("digits", "s3://models/digits", target, model_format="tflite")
    errors = list(
        crd_validator(
            reference_dir, "serving.kserve.io_inferenceservices.yaml", "v1beta1"
        ).iter_errors(isvc)
    )
    assert not errors, [e.message for e in errors]
    pred = isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "RawDeployment",
        # the S3 Secret by name, under the annotation of KServe's kustomize and Helm configs
        "serving.kserve.io/storageSecretName": "kfedge-s3",
        "serving.kserve.io/secretName": "kfedge-s3",
        # no Istio sidecar: KFP's steps have none, so one here would refuse the smoke test
        "sidecar.istio.io/inject": "false",
    }
    assert isvc["metadata"]["labels"]["kfedge.io/target"] == target
    assert pred["nodeSelector"] == tgt.k8s_node_selector()
    assert pred["nodeSelector"]["kubernetes.io/arch"] == "arm64"
    assert pred.get("tolerations", []) == tgt.k8s_tolerations()
    assert pred["serviceAccountName"] == "kfedge-s3" and pred["minReplicas"] == 1
    # one device per node: a RollingUpdate surge pod could never schedule beside the old one
    exclusive = target != "cpu-arm64"
    assert (pred.get("deploymentStrategy") == {"type": "Recreate"}) is exclusive
    model = pred["model"]
    # the runtime with LiteRT alone (manifests/base/clusterservingruntimes-slim.yaml)
    assert model["modelFormat"] == {"name": "tflite"} and model["runtime"] == "kfedge-edge-litert"
    assert model["protocolVersion"] == "v2" and model["storageUri"] == "s3://models/digits"
    res = model["resources"]
    assert res["requests"]["memory"] == tgt.serving_resources.requests["memory"]
    if tgt.accelerator:
        acc = tgt.accelerator
        assert res["limits"][acc.resource] == res["requests"][acc.resource] == str(acc.count)
    # extended resources: the accelerator's and the device plugin's (Coral: squat.ai/coral)
    extended = {k for k in res.get("limits", {}) if "/" in k}
    wanted = {tgt.accelerator.resource} if tgt.accelerator else set()
    assert extended == wanted | set(tgt.devices.resources)
    if tgt.threads:
        assert {"name": "KFEDGE_THREADS", "value": str(tgt.threads)} in model["env"]


def test_jetson_specifics_gpu_toleration_and_onnx_providers() -> None:
    isvc = build_inference_service("d", "s3://m/d", "nvidia-jetson", model_format="onnx")
    pred = isvc["spec"]["predictor"]
    assert pred["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pred["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pred["model"]["args"] == [
        "--providers=TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider",
        '--provider_options={"TensorrtExecutionProvider":{"trt_engine_cache_enable":"True",'
        '"trt_fp16_enable":"True"}}',
        "--cpu_fallback=refuse",
    ]


@pytest.mark.parametrize(
    ("target", "fmt"),
    [("nvidia-jetson", "onnx"), ("intel-npu", "onnx"), ("intel-npu", "openvino"),
     ("coral-edgetpu", "tflite"), ("intel-cpu-openvino", "onnx"), ("cpu-arm64", "onnx")],
)  # fmt: skip
def test_server_runs_the_model_as_the_evaluation_did(target: str, fmt: str) -> None:
    """The predictor's args, parsed by the server's own options, give the runner what the
    evaluation gave it (kfedge.sidebyside / evaluate: the target's providers, provider options,
    delegate, OpenVINO device and CPU-fallback rule): what is deployed is what was measured."""
    import argparse

    from kfedge.serving.options import add_server_options, server_kwargs
    from kfedge.targets import load_target

    tgt = load_target(target)
    isvc = build_inference_service("d", "s3://m/d", target, model_format=fmt)
    parser = argparse.ArgumentParser()
    add_server_options(parser)
    got = server_kwargs(parser.parse_args(isvc["spec"]["predictor"]["model"].get("args") or []))
    accelerated = (
        (fmt == "onnx" and tgt.onnx_providers != ["CPUExecutionProvider"])
        or (fmt == "openvino" and tgt.openvino_device != "CPU")
        or (fmt == "tflite" and bool(tgt.tflite_delegate))
    )
    if fmt == "onnx":
        assert (got["providers"] or ["CPUExecutionProvider"]) == tgt.onnx_providers
        assert (got["provider_options"] or {}) == tgt.onnx_provider_options
    assert got["device"] == (tgt.openvino_device if fmt == "openvino" else "CPU")
    assert got["delegate"] == (tgt.tflite_delegate if fmt == "tflite" else None)
    assert got["allow_cpu_fallback"] is (not accelerated or tgt.allow_cpu_fallback)


def test_openvino_models_are_served_on_the_profiles_openvino_device() -> None:
    npu = build_inference_service("d", "s3://m/d", "intel-npu", model_format="openvino")
    assert npu["spec"]["predictor"]["model"]["args"] == ["--device=NPU", "--cpu_fallback=refuse"]
    cpu = build_inference_service("d", "s3://m/d", "intel-cpu-openvino", model_format="openvino")
    assert not cpu["spec"]["predictor"]["model"].get("args")


def test_serving_options_carry_the_openvino_device() -> None:
    import argparse

    from kfedge.serving.options import add_server_options, server_kwargs

    parser = argparse.ArgumentParser()
    add_server_options(parser)
    assert server_kwargs(parser.parse_args([]))["device"] == "CPU"
    assert server_kwargs(parser.parse_args(["--device", "NPU"]))["device"] == "NPU"


def test_modes_and_uris() -> None:
    isvc = build_inference_service(
        "d", "minio://mlpipeline/v2/artifacts/x", "cpu-amd64", deployment_mode="Standard"
    )
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://mlpipeline/v2/artifacts/x"
    knative = build_inference_service(
        "d", "s3://b/k", "cpu-amd64", deployment_mode="Knative", min_replicas=0
    )
    assert knative["spec"]["predictor"]["minReplicas"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "must be a DNS-1035 label"),
        ({"target": "coral-edgetpu", "model_format": "onnx"}, "serves tflite models, not onnx"),
        ({"storage_uri": "/tmp/model"}, "storage URI KServe's storage initializer can fetch"),
        ({"storage_uri": "s3://"}, "storage URI KServe's storage initializer can fetch"),
        ({"deployment_mode": "Fast"}, "deployment_mode must be one of"),
        ({"protocol": "v3"}, "protocol must be one of"),
        ({"min_replicas": 0}, "min_replicas must be >= 1 in RawDeployment mode"),
        ({"model_format": "keras"}, "model_format must be one of"),
    ],
)
def test_build_refuses_bad_input(kwargs: dict, message: str) -> None:
    args = {"name": "d", "storage_uri": "s3://b/k", "target": "cpu-arm64", **kwargs}
    with pytest.raises(ConfigError, match=message):
        build_inference_service(**args)


def test_isvc_name_fits_every_name_kserve_derives() -> None:
    assert isvc_name("ptq_int8") == "ptq-int8"
    assert isvc_name("Prune50+INT8") == "prune50-int8"
    assert isvc_name("8bit") == "kfedge-8bit"
    # Serverless: Knative's "<name>-predictor-00001-private" is a DNS-1035 label (<= 63)
    long = isvc_name("x" * 100)
    assert len(long) + len("-predictor-00001-private") == 63
    assert long.startswith("x" * 32) and long[-7] == "-" and int(long[-6:], 16) >= 0
    assert isvc_name("x" * 99 + "y") != long  # cut names stay apart
    # RawDeployment: the Ingress host "<name>-predictor-<namespace>.<domain>" (KServe's
    # default domainTemplate) is one DNS label (reconcilers/ingress/domain.go checks it)
    ns = "kubeflow-user-example-com"
    name = isvc_name("nvidia-jetson-onnx_int8_static", ns)
    assert len(f"{name}-predictor-{ns}") <= 63 and name.startswith("nvidia-jetson-onnx")
    assert isvc_name("cpu-arm64-ptq-int8", ns) == "cpu-arm64-ptq-int8"  # short: kept
    for text in ("a" * 80, "Prune50+INT8" * 9):
        got = isvc_name(text, ns)
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", got) and len(got) <= 39


def test_storage_secret_annotations_are_the_ones_kserve_reads() -> None:
    from kfedge.isvc import STORAGE_SECRET_ANNOTATIONS
    from kfedge.support import kserve_defaults

    s3 = kserve_defaults()["s3_credentials"]
    keys = (s3["storage_secret_name_annotation"], s3["storage_secret_name_annotation_helm"])
    assert STORAGE_SECRET_ANNOTATIONS == keys


def test_runtime_is_named_and_storage_secret_annotation_can_be_off() -> None:
    isvc = build_inference_service(
        "d", "s3://b/k", "cpu-amd64", model_format="onnx", storage_secret="", istio_sidecar=True
    )
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "kfedge-edge-onnx"
    assert "image" not in isvc["spec"]["predictor"]["model"]  # the runtime's image
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "RawDeployment"}
    for fmt, runtime in [("tflite", "kfedge-edge-litert"), ("openvino", "kfedge-edge-openvino")]:
        isvc = build_inference_service("d", "s3://b/k", "intel-cpu-openvino", model_format=fmt)
        assert isvc["spec"]["predictor"]["model"]["runtime"] == runtime
    named = build_inference_service("d", "s3://b/k", "cpu-amd64", runtime="kfedge-edge")
    assert named["spec"]["predictor"]["model"]["runtime"] == "kfedge-edge"  # as given
    with pytest.raises(ConfigError, match="runtime is empty"):
        build_inference_service("d", "s3://b/k", "cpu-amd64", runtime="")


def test_default_namespace_is_the_runs_own(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    """In a pod: the pod's namespace (a Kubeflow profile's); else the kubeconfig context's;
    else kubectl's "default"."""
    from kfedge import kube

    monkeypatch.setattr(kube, "SA_NAMESPACE", tmp_path / "absent")
    kc = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "me",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "me", "context": {"cluster": "c", "user": "u"}}],
    }
    kc.write_text(yaml.safe_dump(config))
    assert kube.default_namespace(kc) == "default"
    config["contexts"][0]["context"]["namespace"] = "team-edge"
    kc.write_text(yaml.safe_dump(config))
    assert kube.default_namespace(kc) == "team-edge"
    (tmp_path / "ns").write_text("kubeflow-user-example-com\n")
    monkeypatch.setattr(kube, "SA_NAMESPACE", tmp_path / "ns")
    assert kube.default_namespace(kc) == "kubeflow-user-example-com"


def test_cluster_detection(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert not cluster_configured()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert not cluster_configured()
    (tmp_path / "kc").write_text("apiVersion: v1\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kc"))
    assert cluster_configured()


# --------------------------------------------------------------------- fake Kubernetes API
FakeKube = FakeKServe


@pytest.fixture
def fake_kube(tmp_path: Path):  # noqa: ANN201
    fake = FakeKube()
    yield fake, fake.kubeconfig(tmp_path / "kubeconfig")
    fake.close()


def test_fake_api_create_then_wait_ready_returns_address_url(fake_kube) -> None:  # noqa: ANN001
    fake, kubeconfig = fake_kube
    isvc = build_inference_service("digits", "s3://models/digits", "cpu-arm64")
    url = deploy(isvc, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    assert url == "http://digits.kserve.svc.cluster.local"
    methods = [(r.method, r.path) for r in fake.requests]
    assert methods[0] == ("GET", PREFIX + "default/inferenceservices/digits")
    assert methods[1] == ("POST", PREFIX + "default/inferenceservices")
    assert all(m == "GET" for m, _ in methods[2:])
    # the InferenceService polled until Ready, then its predictor Deployment's rollout read
    assert len(methods) == 2 + fake.ready_after + 1
    assert methods[-1] == ("GET", "/apis/apps/v1/namespaces/default/deployments/digits-predictor")
    assert fake.requests[1].json == isvc  # exactly the object built, nothing else
    assert fake.requests[1].headers["authorization"] == "Bearer fake-token"


def test_fake_api_update_sends_a_merge_patch_that_removes_stale_keys(fake_kube) -> None:  # noqa: ANN001
    fake, kubeconfig = fake_kube
    first = build_inference_service(
        "digits", "s3://models/v1", "nvidia-jetson", model_format="onnx"
    )
    deploy(first, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    second = build_inference_service("digits", "s3://models/v2", "cpu-arm64")
    deploy(second, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    patch = next(r for r in fake.requests if r.method == "PATCH")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    spec = patch.json["spec"]["predictor"]
    assert spec["model"]["storageUri"] == "s3://models/v2"
    assert spec["nodeSelector"]["nvidia.com/gpu.family"] is None  # the GPU label is removed
    assert spec["model"]["args"] is None
    stored = fake.objects[("default", "digits")]
    assert stored["spec"] == second["spec"]  # after the patch the object is exactly the new one
    assert stored["metadata"]["generation"] == 2


def test_fake_api_timeout_reports_the_failing_conditions(tmp_path: Path) -> None:
    fake = FakeKube(never_ready=True)
    try:
        isvc = build_inference_service("digits", "s3://models/d", "cpu-arm64")
        with pytest.raises(
            DeployError,
            match=r"not Ready after 0.2 s: PredictorReady=False "
            r"\(ImagePullBackOff: Back-off pulling image\)",
        ):
            deploy(
                isvc, wait_timeout=0.2, kube=fake.kubeconfig(tmp_path / "kc"), poll_interval=0.02
            )
    finally:
        fake.close()


def test_fake_api_forbidden_names_the_missing_rbac(tmp_path: Path) -> None:
    fake = FakeKube(deny=403)
    try:
        isvc = build_inference_service("digits", "s3://models/d", "cpu-arm64")
        with pytest.raises(DeployError, match=r"HTTP 403 .*forbidden.*get / create / patch") as err:
            deploy(isvc, kube=fake.kubeconfig(tmp_path / "kc"), poll_interval=0.01)
        assert "overlays/standalone" in str(err.value) and not err.value.transient
        assert [r.method for r in fake.requests] == ["GET", "POST"]  # refused once, not retried
    finally:
        fake.close()


def test_fake_api_update_waits_until_kserve_serves_the_new_spec(fake_kube) -> None:  # noqa: ANN001
    """After an update KServe still reports Ready=True for the previous spec, with a
    status.observedGeneration that is the Deployment's (inference_service_status.go,
    PropagateRawStatus), so "observedGeneration >= generation" holds while the old pods serve.
    During the rollout Ready stays True too (the old pod is Available) while the copied
    observedGeneration moves: deploy waits until the predictor Deployment's rollout is done."""
    fake, kubeconfig = fake_kube
    first = build_inference_service("digits", "s3://models/v1", "cpu-arm64")
    deploy(first, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    fake.phases.clear()
    second = build_inference_service("digits", "s3://models/v2", "cpu-arm64")
    deploy(second, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    # the read before the update, then the polls: the stale Ready=True reads are not taken
    assert fake.phases == ["ready", "stale", "stale", "rolling", "rolling", "ready"]
    stale = fake.objects[("default", "digits")]
    assert stale["status"]["observedGeneration"] == 8  # the workload's, not the object's (2)


def test_fake_api_serverless_update_waits_for_the_new_revision(fake_kube) -> None:  # noqa: ANN001
    fake, kubeconfig = fake_kube
    kw = {"deployment_mode": "Serverless", "min_replicas": 0}
    deploy(
        build_inference_service("digits", "s3://m/v1", "cpu-amd64", **kw),
        wait_timeout=10,
        kube=kubeconfig,
        poll_interval=0.01,
    )
    fake.phases.clear()
    deploy(
        build_inference_service("digits", "s3://m/v2", "cpu-amd64", **kw),
        wait_timeout=10,
        kube=kubeconfig,
        poll_interval=0.01,
    )
    assert fake.phases[-1] == "ready" and "rolling" in fake.phases
    pred = fake.objects[("default", "digits")]["status"]["components"]["predictor"]
    assert pred["latestReadyRevision"] == pred["latestCreatedRevision"] == "digits-predictor-00002"


def test_ready_for_current_spec_rules() -> None:
    from kfedge.kube import _snapshot, ready_for_current_spec

    def obj(gen: int, ready: str, since: str, observed: int, **pred: str) -> dict:
        status = {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}],
        }
        if pred:
            status["components"] = {"predictor": pred}
        meta = {"generation": gen, "annotations": {}}
        if pred:
            meta["annotations"]["serving.kserve.io/deploymentMode"] = "Serverless"
        return {"metadata": meta, "status": status}

    before = _snapshot(obj(1, "True", "t1", 7))
    assert ready_for_current_spec(obj(1, "True", "t1", 7), before)[0]  # no spec change
    assert ready_for_current_spec(obj(1, "True", "t1", 7), None)[0]  # we created it
    stale = ready_for_current_spec(obj(2, "True", "t1", 7), before)
    assert not stale[0] and "previous spec" in stale[1]
    assert ready_for_current_spec(obj(2, "True", "t1", 8), before)[0]  # workload moved on
    assert ready_for_current_spec(obj(2, "True", "t3", 7), before)[0]  # went through not-Ready
    assert not ready_for_current_spec(obj(2, "Unknown", "t2", 8), before)[0]
    kn_before = _snapshot(
        obj(1, "True", "t1", 3, latestCreatedRevision="r-1", latestReadyRevision="r-1")
    )
    rolling = obj(2, "True", "t1", 3, latestCreatedRevision="r-2", latestReadyRevision="r-1")
    assert not ready_for_current_spec(rolling, kn_before)[0]
    done = obj(2, "True", "t1", 3, latestCreatedRevision="r-2", latestReadyRevision="r-2")
    assert ready_for_current_spec(done, kn_before)[0]


def test_fake_api_unchanged_redeploy_is_ready_at_once(fake_kube) -> None:  # noqa: ANN001
    fake, kubeconfig = fake_kube
    isvc = build_inference_service("digits", "s3://models/v1", "cpu-arm64")
    deploy(isvc, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    fake.phases.clear()
    deploy(isvc, wait_timeout=10, kube=kubeconfig, poll_interval=0.01)
    assert fake.phases == ["ready", "ready"]  # the read before the write, one poll
    assert fake.objects[("default", "digits")]["metadata"]["generation"] == 1


def test_fake_api_transient_faults_are_retried(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    """500 on the first read, then 503 and 409 on the create: all retried (the whole read +
    create, so a create that did happen is not repeated); one object is created."""
    fake = FakeKube(faults={"GET": [500], "POST": [503, 409]})
    caplog.set_level(logging.WARNING, logger="kfedge.retry")
    try:
        isvc = build_inference_service("digits", "s3://models/d", "cpu-arm64")
        url = deploy(
            isvc, wait_timeout=30, kube=fake.kubeconfig(tmp_path / "kc"), poll_interval=0.01
        )
    finally:
        fake.close()
    assert url == fake.isvc_url and list(fake.objects) == [("default", "digits")]
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == 3  # 503, 409, created
    retries = [r.getMessage() for r in caplog.records if r.name == "kfedge.retry"]
    assert len(retries) == 3 and all(
        "applying InferenceService default/digits" in m for m in retries
    )


def test_fake_api_persistent_5xx_gives_up_saying_transient(tmp_path: Path) -> None:
    from kfedge.deploy import TransientDeployError

    fake = FakeKube(faults={"GET": [503] * 10})
    try:
        isvc = build_inference_service("digits", "s3://models/d", "cpu-arm64")
        with pytest.raises(TransientDeployError, match=r"HTTP 503 .*gave up after 4 attempts"):
            deploy(isvc, kube=fake.kubeconfig(tmp_path / "kc"), poll_interval=0.01)
    finally:
        fake.close()
    assert len(fake.requests) == 4


# ------------------------------------------------------------------------ smoke / local
@pytest.fixture(scope="module")
def candidate(fp32_tflite: Path, sample_dataset: Path, tmp_path_factory) -> dict[str, Any]:  # noqa: ANN001
    """A candidate dir + an evaluation JSON recording eval sample 3's output (as evaluate does)."""
    from kfedge.candidate import Candidate, save_candidate
    from kfedge.data import load_split
    from kfedge.runners import load_runner

    d = tmp_path_factory.mktemp("cand")
    shutil.copy(fp32_tflite, d / "model.tflite")
    save_candidate(Candidate("fp32_baseline", "baseline", "tflite", "model.tflite"), d)
    x, _ = load_split(sample_dataset, "eval", limit=4)
    runner = load_runner(d / "model.tflite")
    values = runner.predict(x[3:4])[0]
    ev = tmp_path_factory.mktemp("eval") / "evaluation.json"
    ev.write_text(
        json.dumps(
            {
                "name": "fp32_baseline",
                "outputs_sample": {
                    "index": 3,
                    "split": "eval",
                    "output_name": runner.outputs[0].name,
                    "values": [float(v) for v in values],
                },
            }
        )
    )
    return {"dir": d, "evaluation": ev, "sample": x[3], "expected": values}


def test_recorded_sample_from_file_or_folder(candidate, sample_dataset, tmp_path) -> None:  # noqa: ANN001
    from kfedge.deploy import recorded_sample
    from kfedge.errors import InvalidInputError

    for where in (candidate["evaluation"], candidate["evaluation"].parent):
        x, want, output_name = recorded_sample(where, sample_dataset)
        np.testing.assert_array_equal(x, candidate["sample"])
        np.testing.assert_allclose(want, candidate["expected"], rtol=1e-6)
        assert output_name
    bad = tmp_path / "evaluation.json"
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(InvalidInputError, match="has no outputs_sample"):
        recorded_sample(bad, sample_dataset)
    bad.write_text(json.dumps({"outputs_sample": {"index": 10**6, "values": [1.0]}}))
    with pytest.raises(InvalidInputError, match="the eval split has .* samples"):
        recorded_sample(bad, sample_dataset)


def test_recorded_sample_needs_no_dataset_when_the_evaluation_carries_the_input(
    candidate,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    from kfedge.deploy import recorded_sample
    from kfedge.errors import InvalidInputError
    from kfedge.evaluation import SampleInput

    raw = json.loads(candidate["evaluation"].read_text())
    with pytest.raises(InvalidInputError, match="has no input .* pass the dataset"):
        recorded_sample(candidate["evaluation"])
    raw["outputs_sample"]["input"] = SampleInput.from_array(candidate["sample"]).to_dict()
    ev = tmp_path / "evaluation.json"
    ev.write_text(json.dumps(raw))
    x, want, _ = recorded_sample(ev)
    assert x.dtype == candidate["sample"].dtype
    np.testing.assert_array_equal(x, candidate["sample"])  # exact, dtype and all
    np.testing.assert_allclose(want, candidate["expected"], rtol=1e-6)
    # what deploy reads is one small JSON, not the dataset: the sample's bytes in base64
    assert ev.stat().st_size < candidate["sample"].nbytes * 4 / 3 + 2048


def test_evaluation_records_the_input_it_scored(candidate, sample_dataset) -> None:  # noqa: ANN001
    """kfedge.accuracy stores the input sample next to its output (deploy needs no dataset)."""
    from kfedge.accuracy import score
    from kfedge.data import load_split
    from kfedge.runners import load_runner

    scores = score(
        load_runner(candidate["dir"] / "model.tflite"), sample_dataset, "eval", 16, 20, 10
    )
    rec = scores.outputs_sample
    x, _ = load_split(sample_dataset, "eval", limit=1)
    np.testing.assert_array_equal(rec.input.to_array(), x[0])


def test_deploy_local_passes_over_v1_and_v2(candidate) -> None:  # noqa: ANN001
    res = deploy_local(candidate["dir"], candidate["sample"], candidate["expected"], name="digits")
    assert res["passed"], res
    assert set(res["protocols"]) == {"v1", "v2"}
    for check in res["protocols"].values():
        assert check["passed"] and check["max_abs_diff"] <= 1e-6
        assert check["argmax"] == check["expected_argmax"] == int(np.argmax(candidate["expected"]))
    assert res["url"].startswith("http://127.0.0.1:")
    # the server was stopped
    with pytest.raises(DeployError, match="unreachable"):
        smoke_test(res["url"], "digits", candidate["sample"], candidate["expected"])


def test_smoke_test_waits_for_an_endpoint_not_routed_yet_but_not_for_a_wrong_answer(
    candidate,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """Refused connections and 503s right after Ready are retried; a wrong answer is not."""
    from s3fixtures import FaultyProxy

    with local_server(candidate["dir"], tmp_path / "server.log", "digits") as url:
        backend = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        late = FaultyProxy(backend, faults=0, delay=1.0)  # nothing listens for 1 s
        busy = FaultyProxy(backend, faults=2, mode="slowdown")  # two 503 answers first
        honest = FaultyProxy(backend, faults=0)
        try:
            for proxy in (late, busy):
                res = smoke_test(proxy.url, "digits", candidate["sample"], candidate["expected"])
                assert res["passed"], res
            assert busy.broken == 2
            wrong = np.roll(candidate["expected"], 1)
            res = smoke_test(honest.url, "digits", candidate["sample"], wrong, check=False)
            assert res["passed"] is False and "differs from the evaluated output" in res["detail"]
            assert honest.count("POST", "/v2/models/digits/infer") == 1  # asked once
        finally:
            for proxy in (late, busy, honest):
                proxy.close()


def test_deploy_local_wrong_expected_output_fails_with_reason(candidate) -> None:  # noqa: ANN001
    wrong = np.roll(candidate["expected"], 1)
    res = deploy_local(candidate["dir"], candidate["sample"], wrong, name="digits")
    assert res["passed"] is False
    assert "V1 answer differs from the evaluated output: max abs diff" in res["detail"]


def test_fake_api_full_cluster_sequence_with_smoke_test_on_a_real_server(
    candidate,
    sample_dataset,
    tmp_path,  # noqa: ANN001
) -> None:
    """deploy_candidate(mode=cluster): FAKE API for create/wait, REAL local server for the
    V2 smoke test (the fake reports the local server's URL as the service address)."""
    with local_server(candidate["dir"], tmp_path / "server.log", "kfedge-cpu-arm64") as url:
        fake = FakeKube(url=url)
        try:
            res = deploy_candidate(
                candidate["dir"],
                candidate["evaluation"],
                sample_dataset,
                "cpu-arm64",
                tmp_path / "endpoint",
                tmp_path / "isvc",
                model_uri="minio://mlpipeline/run/model",
                mode="cluster",
                kube=fake.kubeconfig(tmp_path / "kc"),
                poll_interval=0.01,
            )
        finally:
            fake.close()
    assert res["passed"] and res["mode"] == "cluster" and res["url"] == url
    assert res["protocols"]["v2"]["max_abs_diff"] <= 1e-6
    # the kubeconfig's context names no namespace and this is not a pod: kubectl's default
    assert res["namespace"] == "default" and res["storage_uri"] == "s3://mlpipeline/run/model"
    created = next(r.json for r in fake.requests if r.method == "POST")
    assert created["metadata"]["name"] == "kfedge-cpu-arm64"  # one per target
    assert created["metadata"]["labels"]["kfedge.io/candidate"] == "fp32_baseline"
    assert created["spec"]["predictor"]["model"]["storageUri"] == "s3://mlpipeline/run/model"
    assert yaml.safe_load((tmp_path / "isvc" / "inferenceservice.yaml").read_text()) == created
    assert json.loads((tmp_path / "endpoint" / "endpoint.json").read_text())["passed"] is True


def test_deploy_candidate_refuses_bad_mode_before_anything(
    candidate,
    sample_dataset,  # noqa: ANN001
    tmp_path,
) -> None:
    call = functools.partial(
        deploy_candidate,
        candidate["dir"],
        candidate["evaluation"],
        sample_dataset,
        "cpu-arm64",
        tmp_path / "e",
        tmp_path / "i",
    )
    with pytest.raises(ConfigError, match="mode must be auto, local or cluster"):
        call(mode="remote")
    with pytest.raises(ConfigError, match="storage URI"):
        call(mode="cluster")
    assert not (tmp_path / "e").exists() and not (tmp_path / "i").exists()


def test_deploy_from_files_fills_artifact_metadata(candidate, sample_dataset, tmp_path) -> None:  # noqa: ANN001
    """What the component runs, with stand-ins for its KFP artifacts (path, uri, metadata)."""

    def artifact(path: Path, uri: str = "") -> SimpleNamespace:
        return SimpleNamespace(path=str(path), uri=uri, metadata={})

    endpoint, isvc_out = artifact(tmp_path / "endpoint"), artifact(tmp_path / "isvc")
    url = deploy_from_files(
        artifact(candidate["dir"], "minio://mlpipeline/run/model"),
        artifact(candidate["evaluation"]),
        artifact(sample_dataset),  # an evaluation without the input: the dataset gives it
        "cpu-amd64",
        endpoint,
        isvc_out,
        name="digits",
        namespace="edge",
        mode="local",
    )
    assert url.startswith("http://127.0.0.1:")
    assert endpoint.metadata["url"] == url and endpoint.metadata["passed"] is True
    assert endpoint.metadata["mode"] == "local" and endpoint.metadata["model_name"] == "digits"
    assert endpoint.metadata["max_abs_diff"] <= 1e-6
    assert isvc_out.metadata == {"namespace": "edge", "target": "cpu-amd64", "name": "digits"}
    written = yaml.safe_load((tmp_path / "isvc" / "inferenceservice.yaml").read_text())
    assert written["metadata"]["namespace"] == "edge"
    # the Model artifact's URI is the storage URI (checked and rewritten in cluster mode only)
    assert written["spec"]["predictor"]["model"]["storageUri"] == "minio://mlpipeline/run/model"
    assert json.loads((tmp_path / "endpoint" / "endpoint.json").read_text())["url"] == url


# ------------------------------------------------------------------------------ component
@pytest.mark.e2e
def test_component_deploys_locally_under_kfp_local(candidate, tmp_path) -> None:  # noqa: ANN001
    """The deploy step needs no dataset: the evaluation carries the input sample."""
    from kfp import dsl, local
    from kfp.dsl import Artifact, Model, Output

    from kfedge.components.deploy import deploy as deploy_component

    @dsl.component
    def _inputs(
        model_dir: str,
        evaluation_file: str,
        model: Output[Model],
        evaluation: Output[Artifact],
    ) -> None:
        import shutil

        shutil.copytree(model_dir, model.path)
        shutil.copy(evaluation_file, evaluation.path)

    @dsl.pipeline
    def _pipe(model_dir: str, evaluation_file: str) -> str:
        made = _inputs(model_dir=model_dir, evaluation_file=evaluation_file)
        return deploy_component(
            model=made.outputs["model"],
            evaluation=made.outputs["evaluation"],
            target="cpu-amd64",
            mode="local",
        ).outputs["Output"]

    from kfedge.evaluation import SampleInput

    raw = json.loads(candidate["evaluation"].read_text())
    raw["outputs_sample"]["input"] = SampleInput.from_array(candidate["sample"]).to_dict()
    ev = tmp_path / "selection.json"
    ev.write_text(json.dumps(raw))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    run = _pipe(model_dir=str(candidate["dir"]), evaluation_file=str(ev))
    assert run.output.startswith("http://127.0.0.1:")
    endpoint = json.loads(next(tmp_path.rglob("endpoint.json")).read_text())
    assert endpoint["passed"] and endpoint["mode"] == "local"
    assert set(endpoint["protocols"]) == {"v1", "v2"}
    isvc = yaml.safe_load(next(tmp_path.rglob("inferenceservice.yaml")).read_text())
    assert isvc["metadata"]["name"] == "kfedge-cpu-amd64"  # one per target
    assert isvc["metadata"]["labels"]["kfedge.io/candidate"] == "fp32_baseline"
    assert isvc["spec"]["predictor"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}


def test_a_target_with_its_own_serving_image_gets_kfedge_edge_with_that_image() -> None:
    """A profile that names its own image (a CUDA build, say) keeps the every-runtime
    kfedge-edge and replaces its image on the InferenceService (KServe merges the model's
    container over the runtime's); ``auto`` must not send it to a one-runtime runtime."""
    from kfedge.targets import load_target

    tgt = load_target("nvidia-gpu").model_copy(update={"runtime_image": "reg.local/cuda-srv:1"})
    isvc = build_inference_service("d", "s3://b/k", tgt, model_format="onnx")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == "kfedge-edge" and model["image"] == "reg.local/cuda-srv:1"


def test_fake_api_never_replaces_an_inferenceservice_kfedge_did_not_make(fake_kube) -> None:  # noqa: ANN001
    fake, kubeconfig = fake_kube
    theirs = build_inference_service("kfedge-cpu-arm64", "s3://models/theirs", "cpu-arm64")
    theirs["metadata"]["labels"] = {"app": "someone-else"}
    fake.objects[("default", "kfedge-cpu-arm64")] = theirs
    fake.state[("default", "kfedge-cpu-arm64")] = {"phase": "ready", "reads": 0}
    ours = build_inference_service("kfedge-cpu-arm64", "s3://models/ours", "cpu-arm64")
    with pytest.raises(DeployError, match="is not kfedge's"):
        deploy(ours, wait_timeout=5, kube=kubeconfig, poll_interval=0.01)
    assert not [r for r in fake.requests if r.method in ("POST", "PATCH")]


def test_smoke_test_proves_which_model_the_endpoint_serves(candidate, tmp_path) -> None:  # noqa: ANN001
    """The server reports the content hash of what it loaded as the model's version; the
    smoke test passes only when it is the candidate's (a rollout that has not reached the
    endpoint, or another model mounted, fails it even when the answers agree)."""
    from kfedge.candidate import model_digest
    from kfedge.smoke import smoke_test

    digest = model_digest(candidate["dir"])
    assert digest.startswith("sha256:") and digest == model_digest(
        next(candidate["dir"].glob("*.tflite"))
    )
    with local_server(candidate["dir"], tmp_path / "server.log", "digits") as url:
        meta = json.loads(urllib.request.urlopen(f"{url}/v2/models/digits").read())
        assert meta["versions"] == [digest] and meta["platform"].startswith("kfedge-tflite")
        ok = smoke_test(url, "digits", candidate["sample"], candidate["expected"],
                        model_version=digest)  # fmt: skip
        assert ok["passed"] and ok["model_version"] == digest
        other = "sha256:" + "0" * 64
        res = smoke_test(url, "digits", candidate["sample"], candidate["expected"],
                         model_version=other, check=False)  # fmt: skip
    assert not res["passed"] and "serves another model than this candidate" in res["detail"]
