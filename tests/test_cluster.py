"""kfedge against a real Kubernetes + KServe control plane (``controlplane``), not a fake.

The API server, scheduler, controller manager and KServe's controller and webhooks are the
upstream programs (built from the Go module proxy); the nodes are kwok's, shaped like the edge
targets, so nothing serves on them: these tests go as far as Kubernetes goes (admission,
the predictor's Deployment, the storage initializer, scheduling, Ready), and no further.

The profile namespace is made as Kubeflow makes one: Pod Security ``enforce: baseline``
(kubeflow/manifests v1.11.0 ``apps/profiles``' namespace labels), ServiceAccount
``default-editor`` bound to ClusterRole ``kubeflow-edit``, which aggregates every ClusterRole
labelled ``rbac.authorization.kubeflow.org/aggregate-to-kubeflow-edit`` (kubeflow/manifests
``common/kubeflow-roles/base/cluster-roles.yaml``; made here: the aggregating roots and the
apps rule of ``kubeflow-kubernetes-view``)
and gets InferenceServices from KServe's own ``kubeflow-kserve-edit``
(kserve ``config/overlays/kubeflow/cluster-role.yaml``, applied from KServe's module).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import control_plane  # noqa: F401 - session fixture

from kfedge import isvc as isvc_mod
from kfedge import kube
from kfedge.isvc import DeployError
from kfedge.targets import list_targets, load_target

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "kubeflow-user-example-com"
STANDALONE = "kubeflow"
URI = "s3://mlpipeline/v2/artifacts/edge-optimize/run-1/candidate"
#: Where each target's predictor may land (the node classes of controlplane.plane.NODES).
PLACES = {
    "cpu-amd64": {"amd64-amd", "amd64-intel", "amd64-intel-npu"},
    "intel-cpu-openvino": {"amd64-intel", "amd64-intel-npu"},
    "intel-npu": {"amd64-intel-npu"},
    "nvidia-gpu": {"amd64-nvidia-gpu"},
    "cpu-arm64": {"arm64-pi", "arm64-coral"},
    "nvidia-jetson": {"arm64-jetson"},
    "coral-edgetpu": {"arm64-coral"},  # its device plugin's resource: admitted under baseline
}


def _kubeflow_roots() -> list[dict[str, Any]]:
    """Kubeflow's aggregating ClusterRoles (kubeflow/manifests common/kubeflow-roles)."""

    def agg(name: str, label: str, extra_labels: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": extra_labels},
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchLabels": {f"rbac.authorization.kubeflow.org/{label}": "true"}}
                ]
            },
            "rules": [],
        }

    return [
        agg("kubeflow-admin", "aggregate-to-kubeflow-admin", {}),
        agg(
            "kubeflow-edit",
            "aggregate-to-kubeflow-edit",
            {"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-admin": "true"},
        ),
        agg(
            "kubeflow-view",
            "aggregate-to-kubeflow-view",
            {"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-edit": "true"},
        ),
        {
            # kubeflow-kubernetes-view: its apps rule only (the others grant reads kfedge
            # does not make)
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "kubeflow-kubernetes-view",
                "labels": {"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-view": "true"},
            },
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": [
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
    ]


@pytest.fixture(scope="module")
def cluster(control_plane, tmp_path_factory):  # noqa: F811
    """The control plane with a Kubeflow-like profile namespace, a standalone-KFP-like one,
    and kfedge's manifests applied to both with ``kubectl apply -k`` (the built kubectl)."""
    plane = control_plane
    kserve_roles = plane.kserve_config / "cluster-role.yaml"
    plane.kubectl("apply", "--server-side", "-f", str(kserve_roles))
    plane.apply(
        [
            *_kubeflow_roots(),
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": PROFILE,
                    "labels": {
                        "app.kubernetes.io/part-of": "kubeflow-profile",
                        "istio-injection": "enabled",
                        "pod-security.kubernetes.io/enforce": "baseline",
                    },
                },
            },
            {
                # standalone KFP's own namespace (kubeflow/pipelines manifests/kustomize/
                # cluster-scoped-resources/namespace.yaml): Pod Security baseline, no
                # control-plane label (Kubeflow's platform manifests add one, which KServe's
                # pod webhook skips: doctor checks it)
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": STANDALONE,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/warn": "restricted",
                    },
                },
            },
        ]
    )
    plane.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default-editor", "namespace": PROFILE},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "namespaceAdmin", "namespace": PROFILE},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "kubeflow-edit",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "default-editor", "namespace": PROFILE}
                ],
            },
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "pipeline-runner", "namespace": STANDALONE},
            },
        ]
    )
    manifests = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(ROOT / "manifests", manifests)
    for env in manifests.rglob("s3-credentials.env.example"):
        env.with_suffix("").write_text(
            "AWS_ACCESS_KEY_ID=test-access-key\nAWS_SECRET_ACCESS_KEY=test-secret-key\n"
        )
    for overlay in ("standalone", "kubeflow-profile"):
        plane.kubectl("apply", "--server-side", "-k", str(manifests / "overlays" / overlay))
    return plane


@pytest.fixture
def isvcs(cluster):
    """Names of the InferenceServices a test makes in the profile; deleted after it, with their
    pods (a node has one GPU: the next test needs it free)."""
    names: list[str] = []
    yield names
    for name in names:
        cluster.kubectl("delete", "isvc", name, "-n", PROFILE, "--ignore-not-found", "--wait")
    deadline = time.monotonic() + 60
    while any(_pods(cluster, PROFILE, n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.5)


def _token_kubeconfig(plane, namespace: str, account: str, path: Path) -> Path:
    token = plane.kubectl("create", "token", account, "-n", namespace, "--duration=1h").strip()
    return plane.kubeconfig_for_token(token, namespace, path)


def _get(plane, *args: str) -> dict[str, Any]:
    return json.loads(plane.kubectl("get", *args, "-o", "json"))


def _pods(plane, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"serving.kserve.io/inferenceservice={name}"
    return _get(plane, "pods", "-n", namespace, "-l", selector)["items"]


def test_nodes_are_shaped_like_the_targets(control_plane):  # noqa: F811
    nodes = {n["metadata"]["name"]: n for n in _get(control_plane, "nodes")["items"]}
    assert set(PLACES["cpu-arm64"]) | {"arm64-jetson", "amd64-nvidia-gpu"} <= set(nodes)
    jetson = nodes["arm64-jetson"]
    assert jetson["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert jetson["spec"]["taints"][0]["key"] == "nvidia.com/gpu"
    ready = {
        name: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
        for name, n in nodes.items()
    }
    assert set(ready.values()) == {"True"}, ready


def test_shipped_runtimes_pass_kserves_webhook(cluster):
    runtimes = _get(cluster, "clusterservingruntimes")["items"]
    names = {r["metadata"]["name"] for r in runtimes}
    shipped = {"kfedge-edge", "kfedge-edge-litert", "kfedge-edge-onnx", "kfedge-edge-openvino"}
    assert shipped <= names
    secret = _get(cluster, "secret", "kfedge-s3", "-n", PROFILE)
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]


@pytest.mark.parametrize("target", sorted(PLACES))
def test_deploy_lands_on_the_targets_node(cluster, target, tmp_path, isvcs):
    """kfedge.kube.deploy as the profile's default-editor: KServe's webhook admits it, its
    controller makes the Deployment with the storage initializer, the scheduler places it."""
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    formats = load_target(target).formats
    fmt = (
        "openvino"
        if target == "intel-cpu-openvino"
        else ("onnx" if "onnx" in formats else formats[0])
    )
    name = isvc_mod.isvc_name(f"kfedge-{target}", PROFILE)
    isvcs.append(name)
    obj = isvc_mod.build_inference_service(name, URI, target, PROFILE, model_format=fmt)
    started = time.monotonic()
    url = kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
    assert name in url
    pods = _pods(cluster, PROFILE, name)
    assert pods, "no predictor pod"
    pod = pods[0]
    node = pod["spec"]["nodeName"]
    assert node in PLACES[target], (target, node)
    init = [c["name"] for c in pod["spec"].get("initContainers", [])]
    assert "storage-initializer" in init, init
    env = {
        e["name"]: e.get("value") for c in pod["spec"]["initContainers"] for e in c.get("env", [])
    }
    assert env.get("S3_ENDPOINT") == "seaweedfs.kubeflow:8333", env
    # KServe copied the Istio opt-out onto the pod (the profile namespace injects sidecars)
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    print(f"{target}: Ready on {node} in {time.monotonic() - started:.1f} s")


def test_misspelled_field_is_refused(cluster, tmp_path):
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    name = isvc_mod.isvc_name("kfedge-typo", PROFILE)
    obj = isvc_mod.build_inference_service(name, URI, "cpu-arm64", PROFILE, model_format="onnx")
    obj["spec"]["predictor"]["nodeSelektor"] = obj["spec"]["predictor"].pop("nodeSelector")
    with pytest.raises(DeployError, match="nodeSelektor"):
        kube.deploy(obj, wait_timeout=30, kube=str(kubeconfig), poll_interval=0.5)


def test_yaml_roundtrip_of_examples_is_admitted(cluster):
    """Every shipped example InferenceService passes the API server's schema and KServe's
    webhooks (server-side dry run, as kubectl apply --dry-run=server)."""
    examples = sorted((ROOT / "manifests" / "examples").glob("isvc-*.yaml"))
    assert len(examples) == len(list_targets())
    for path in examples:
        # kubectl raises (check=True) on a refusal by the schema or a webhook
        out = cluster.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", str(path))
        assert "(server dry run)" in out, out


def test_pod_security_refusal_is_a_clear_error_at_once(cluster, tmp_path, isvcs):
    """Coral's privileged hostPath variant in a Kubeflow profile (Pod Security baseline): the
    ReplicaSet's pod is refused, KServe reports FailedCreate, deploy says why at once."""
    from kfedge.targets import target_yaml

    privileged = tmp_path / "coral-privileged.yaml"
    data = yaml.safe_load(target_yaml("coral-edgetpu"))
    data["devices"] = {"host_paths": [{"path": "/dev/bus/usb"}], "privileged": True}
    privileged.write_text(yaml.safe_dump(data))
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    name = isvc_mod.isvc_name("kfedge-coral-privileged", PROFILE)
    isvcs.append(name)
    obj = isvc_mod.build_inference_service(name, URI, str(privileged), PROFILE)
    started = time.monotonic()
    with pytest.raises(DeployError, match=r"violates PodSecurity \"baseline.*device plugin"):
        kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
    assert time.monotonic() - started < 30  # not the timeout
    assert not _pods(cluster, PROFILE, name)


def _revision_uris(plane, namespace: str, name: str) -> set[str]:
    """The storage URI of every live predictor pod (the storage initializer's first arg)."""
    uris = set()
    for pod in _pods(plane, namespace, name):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        init = next(c for c in pod["spec"]["initContainers"] if c["name"] == "storage-initializer")
        uris.add(init["args"][0])
    return uris


@pytest.mark.parametrize("target", ["cpu-arm64", "nvidia-jetson"])
def test_redeploy_returns_when_only_the_new_model_runs(cluster, target, tmp_path, isvcs):
    """A second deploy with another model returns only when every live predictor pod runs
    it: KServe's Ready stays True during the rollout, so deploy waits on the Deployment. On
    the Jetson node (one GPU) the profile's Recreate strategy lets the new pod schedule."""
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    name = isvc_mod.default_isvc_name(target)
    isvcs.append(name)
    for version in ("v1", "v2"):
        obj = isvc_mod.build_inference_service(
            name, f"s3://models/{version}", target, PROFILE, candidate=f"ptq-int8-{version}"
        )
        kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
        assert _revision_uris(cluster, PROFILE, name) == {f"s3://models/{version}"}
        # one InferenceService for the target, its label naming the candidate it serves now
        mine = _get(cluster, "isvc", "-n", PROFILE, "-l", f"kfedge.io/target={target}")["items"]
        assert [i["metadata"]["name"] for i in mine] == [name]
        assert mine[0]["metadata"]["labels"]["kfedge.io/candidate"] == f"ptq-int8-{version}"
    dep = _get(cluster, "deployment", kube.predictor_deployment(name), "-n", PROFILE)
    expected = "Recreate" if target == "nvidia-jetson" else "RollingUpdate"
    assert dep["spec"]["strategy"]["type"] == expected


def test_rolling_update_on_a_one_gpu_node_never_finishes(cluster, tmp_path, isvcs):
    """Why Recreate: with KServe's default RollingUpdate the surged pod needs a second GPU the
    Jetson node does not have; it stays Pending and the old model keeps serving. deploy
    waits for the rollout and says so, instead of reporting the old pod's Ready."""
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    name = isvc_mod.isvc_name("kfedge-rolling-jetson", PROFILE)
    isvcs.append(name)
    for version in ("v1", "v2"):
        obj = isvc_mod.build_inference_service(
            name, f"s3://models/{version}", "nvidia-jetson", PROFILE
        )
        obj["spec"]["predictor"].pop("deploymentStrategy")
        if version == "v1":
            kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
            continue
        with pytest.raises(DeployError, match=r"(new predictor pods available|old predictor pod)"):
            kube.deploy(obj, wait_timeout=10, kube=str(kubeconfig), poll_interval=0.5)
    isvc = _get(cluster, "isvc", name, "-n", PROFILE)
    ready = next(c for c in isvc["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"  # what KServe reports meanwhile: the old pod serves
    assert _revision_uris(cluster, PROFILE, name) == {"s3://models/v1", "s3://models/v2"}
    pending = [p for p in _pods(cluster, PROFILE, name) if p["status"]["phase"] == "Pending"]
    assert len(pending) == 1


def test_s3_secret_named_by_annotation_needs_no_service_account_listing(cluster, tmp_path, isvcs):
    """KServe reads the Secret the InferenceService names by annotation
    (serving.kserve.io/storageSecretName) whatever its ServiceAccount lists, so doctor must
    not fail a ServiceAccount that lists none."""
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "bare", "namespace": PROFILE},
                "automountServiceAccountToken": False,
            }
        ]
    )
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    name = isvc_mod.isvc_name("kfedge-bare-sa", PROFILE)
    isvcs.append(name)
    obj = isvc_mod.build_inference_service(
        name, URI, "cpu-arm64", PROFILE, model_format="onnx", service_account="bare"
    )
    kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
    (pod,) = _pods(cluster, PROFILE, name)
    init = next(c for c in pod["spec"]["initContainers"] if c["name"] == "storage-initializer")
    env = {e["name"]: e for e in init.get("env", [])}
    assert env["S3_ENDPOINT"]["value"] == "seaweedfs.kubeflow:8333"
    key_ref = env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]
    assert key_ref["name"] == "kfedge-s3"


def test_doctor_on_the_real_api(cluster):
    """kfedge doctor's Kubernetes checks against the real API server and KServe: all pass for
    a CPU target in the profile; Coral's privileged pod fails Pod Security, as deploy does."""
    from kfedge.doctor import run_doctor

    def kube_findings(target: str) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for f in run_doctor(target, namespace=PROFILE, kubeconfig=str(cluster.kubeconfig)):
            found.setdefault(f.check, []).append(f)
        return found

    arm = kube_findings("cpu-arm64")
    for check in ("kserve", "runtime", "nodes", "s3-secret", "s3-serviceaccount", "istio"):
        assert check in arm and all(f.level == "ok" for f in arm[check]), (check, arm.get(check))
    coral = kube_findings("coral-edgetpu")  # the device-plugin variant: nothing to refuse
    assert "pod-security" not in coral
    assert all(f.level == "ok" for f in coral["nodes"]), coral["nodes"]


def test_standalone_pipeline_runner_deploys_with_exactly_the_shipped_role(cluster, tmp_path):
    """Standalone KFP: pipeline-runner in `kubeflow` holds only the overlay's Role
    kfedge-deployer (get / create / patch InferenceServices, get Deployments): enough."""
    kubeconfig = _token_kubeconfig(cluster, STANDALONE, "pipeline-runner", tmp_path / "kc")
    name = isvc_mod.default_isvc_name("cpu-amd64")
    obj = isvc_mod.build_inference_service(name, URI, "cpu-amd64", STANDALONE, model_format="onnx")
    try:
        kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
        # and again with another model: the update path (patch, then the rollout read)
        obj["spec"]["predictor"]["model"]["storageUri"] = URI + "-v2"
        kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
    finally:
        cluster.kubectl("delete", "isvc", name, "-n", STANDALONE, "--ignore-not-found")


def test_without_the_role_deploy_is_forbidden_with_the_fix(cluster, tmp_path):
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "nobody", "namespace": STANDALONE},
            }
        ]
    )
    kubeconfig = _token_kubeconfig(cluster, STANDALONE, "nobody", tmp_path / "kc")
    obj = isvc_mod.build_inference_service(
        "kfedge-forbidden", URI, "cpu-amd64", STANDALONE, model_format="onnx"
    )
    with pytest.raises(DeployError, match=r"HTTP 403 .*overlays/standalone") as err:
        kube.deploy(obj, wait_timeout=30, kube=str(kubeconfig), poll_interval=0.5)
    assert not err.value.transient


def test_a_fleet_deploys_each_target_on_its_own_node_class(cluster, tmp_path, isvcs):
    """edge-fleet's deploy steps for three targets at once (as its parallel node groups run
    them): one InferenceService per target, named by the fleet plan, each predictor on a
    node of its target's class."""
    from concurrent.futures import ThreadPoolExecutor

    from kfedge.fleet import plan_fleet

    spec = plan_fleet("cpu-arm64,intel-cpu-openvino,nvidia-jetson", ["ptq-int8"], cluster=True)
    assert len(spec["groups"]) == 2  # the arm64 targets may share a node: one group
    kubeconfig = _token_kubeconfig(cluster, PROFILE, "default-editor", tmp_path / "kc")
    fmt = {"cpu-arm64": "tflite", "intel-cpu-openvino": "openvino", "nvidia-jetson": "onnx"}

    def deploy(target: str) -> str:
        name = isvc_mod.isvc_name(spec["targets"][target]["service_name"], PROFILE)
        obj = isvc_mod.build_inference_service(name, URI, target, PROFILE, model_format=fmt[target])
        kube.deploy(obj, wait_timeout=120, kube=str(kubeconfig), poll_interval=0.5)
        return name

    names = [isvc_mod.isvc_name(t["service_name"], PROFILE) for t in spec["targets"].values()]
    isvcs.extend(names)
    with ThreadPoolExecutor(len(fmt)) as pool:
        deployed = dict(zip(fmt, pool.map(deploy, fmt)))
    assert sorted(deployed.values()) == sorted(names) and len(set(names)) == 3
    for target, name in deployed.items():
        (pod,) = _pods(cluster, PROFILE, name)
        assert pod["spec"]["nodeName"] in PLACES[target], (target, pod["spec"]["nodeName"])
        print(f"fleet: {target} -> {name} on {pod['spec']['nodeName']}")
