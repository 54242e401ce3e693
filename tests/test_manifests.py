"""manifests/ (kustomize) and images/: valid, consistent with the code, and installable next to
what KServe and Kubeflow install, by the rules of their source (kfedge/data/kserve_defaults.yaml
says where each rule comes from)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import clusterkit
import pytest
import yaml
from fake_apis import crd_validator

from kfedge.images import image_catalog, image_for_ref
from kfedge.support import kserve_defaults, runtime_clashes
from kfedge.targets import list_targets, load_target

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
BASE = MANIFESTS / "base"
EXAMPLES = MANIFESTS / "examples"
OVERLAYS = MANIFESTS / "overlays"
IMAGES = ROOT / "images"
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
#: Every env file a secretGenerator reads, relative to manifests/ (each has a .example).
ENV_FILES = [
    "overlays/kubeflow-profile/s3-credentials.env",
    "overlays/standalone/namespaced/s3-credentials.env",
]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _runtime() -> dict[str, Any]:
    return _docs(BASE / "clusterservingruntime.yaml")[0]


def _slim_runtimes() -> list[dict[str, Any]]:
    return _docs(BASE / "clusterservingruntimes-slim.yaml")


# ------------------------------------------------------------------------------- the runtime
def test_cluster_serving_runtime_fits_the_crd(reference_dir: Path) -> None:
    rt = _runtime()
    v = crd_validator(reference_dir, "serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1")
    errors = list(v.iter_errors(rt))
    assert not errors, [e.message for e in errors]
    assert rt["kind"] == "ClusterServingRuntime" and rt["metadata"]["name"] == "kfedge-edge"


def test_runtime_serves_what_kfedge_serves_with_the_versioned_image() -> None:
    from kfedge._version import SERVING_IMAGE
    from kfedge.formats import DEPLOYABLE

    spec = _runtime()["spec"]
    # tflite and onnx always; a format kfedge adds to DEPLOYABLE is listed once the server
    # image serves it (then apply the auto-select test below to it too)
    names = {f["name"] for f in spec["supportedModelFormats"]}
    assert {"tflite", "onnx"} <= names <= set(DEPLOYABLE)
    assert spec["protocolVersions"] == ["v1", "v2"]
    (c,) = spec["containers"]
    assert c["name"] == "kserve-container"
    assert c["image"] == SERVING_IMAGE
    assert image_for_ref(c["image"]).tensorflow is False
    assert c["args"][:3] == [
        "--model_name={{.Name}}",
        "--model_dir=/mnt/models",
        "--http_port=8080",
    ]
    assert spec["annotations"] == {
        "prometheus.kserve.io/port": "8080",
        "prometheus.kserve.io/path": "/metrics",
    }
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    # KServe's webhook refuses PYTHONPATH in runtime containers (pkg/validation/env_policy.go)
    assert "PYTHONPATH" not in {e["name"] for e in c.get("env", [])}


def test_runtime_args_are_accepted_by_the_server_entry_point() -> None:
    from kfedge.serving.__main__ import build_parser

    args = [a.replace("{{.Name}}", "digits") for a in _runtime()["spec"]["containers"][0]["args"]]
    ns = build_parser().parse_args(args)
    assert (ns.model_name, ns.model_dir, ns.http_port, ns.enable_grpc) == (
        "digits",
        "/mnt/models",
        8080,
        False,
    )


def test_runtime_security_context_is_restricted() -> None:
    spec = _runtime()["spec"]
    sc = spec["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"])


def _kserve_runtimes(*groups: str) -> list[tuple[str, dict[str, Any]]]:
    data = kserve_defaults()
    return [(r["name"], r) for g in groups for r in data[g]]


def test_runtime_installs_next_to_kserve_default_runtimes() -> None:
    """KServe's servingruntime webhook (pkg/webhook/admission/servingruntime/
    servingruntime_webhook.go) admits kfedge-edge next to every default ClusterServingRuntime
    of KServe 0.21 and the opt-in kserve-openvino, in both orders of installation."""
    others = _kserve_runtimes("cluster_serving_runtimes", "optional_cluster_serving_runtimes")
    assert len(others) >= 15
    ours = [(r["metadata"]["name"], r["spec"]) for r in [_runtime(), *_slim_runtimes()]]
    for name, spec in ours:  # each of kfedge's after KServe's and after kfedge's others
        rest = [o for o in ours if o[0] != name]
        assert runtime_clashes(spec, [*others, *rest], name) == [], name
    for name, spec in others:  # KServe (re)installed after kfedge
        assert runtime_clashes(spec, ours, name) == [], name


def test_one_runtime_per_image_mirrors_kfedge_edge() -> None:
    """kfedge-edge-litert / -onnx / -openvino are kfedge-edge but for the name, the formats
    (those their image serves, none auto-selected) and the image (the catalog's one-runtime
    image); deploy's ``auto`` names them, and every format kfedge-edge serves has one."""
    from kfedge.isvc import resolve_runtime

    full = _runtime()
    slim = {r["metadata"]["name"]: r for r in _slim_runtimes()}
    versions = {f["name"]: f["version"] for f in full["spec"]["supportedModelFormats"]}
    for fmt in versions:
        name = resolve_runtime("auto", fmt, full["spec"]["containers"][0]["image"])
        rt = slim[name]
        (c,) = rt["spec"]["containers"]
        spec = image_for_ref(c["image"])
        assert spec is not None and c["image"] == spec.reference() and spec.formats == (fmt,)
        assert spec.tensorflow is False
        assert rt["spec"]["supportedModelFormats"] == [
            {"name": fmt, "version": versions[fmt], "autoSelect": False}
        ]
        mirror = yaml.safe_load(yaml.safe_dump(rt))
        mirror["metadata"]["name"] = mirror["metadata"]["labels"]["app.kubernetes.io/name"] = full[
            "metadata"
        ]["name"]
        mirror["spec"]["supportedModelFormats"] = full["spec"]["supportedModelFormats"]
        mirror["spec"]["containers"][0]["image"] = full["spec"]["containers"][0]["image"]
        assert mirror == full, name
    assert len(slim) == len(versions)


def test_slim_runtimes_fit_the_crd(reference_dir: Path) -> None:
    v = crd_validator(reference_dir, "serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1")
    for rt in _slim_runtimes():
        assert not [e.message for e in v.iter_errors(rt)], rt["metadata"]["name"]


def test_the_webhook_rule_denies_what_kserve_denies() -> None:
    """The encoded rule is the webhook's: the previous kfedge-edge (onnx "1" auto-selected at
    priority 1) was denied next to kserve-tritonserver; what the rule skips, it skips."""
    old = {
        "protocolVersions": ["v1", "v2"],
        "supportedModelFormats": [
            {"name": "tflite", "version": "2", "autoSelect": True, "priority": 1},
            {"name": "onnx", "version": "1", "autoSelect": True, "priority": 1},
        ],
    }
    triton = dict(_kserve_runtimes("cluster_serving_runtimes"))["kserve-tritonserver"]
    assert runtime_clashes(old, [("kserve-tritonserver", triton)])
    assert runtime_clashes({**old, "disabled": True}, [("t", triton)]) == []
    assert runtime_clashes({**old, "protocolVersions": ["v1"]}, [("t", triton)]) == []
    assert runtime_clashes({**old, "multiModel": True}, [("t", triton)]) == []
    assert runtime_clashes(old, [("t", {**triton, "disabled": True})]) == []
    assert runtime_clashes(old, [("kfedge-edge", triton)], "kfedge-edge") == []  # an update
    upper = {**old, "supportedModelFormats": [{**old["supportedModelFormats"][1], "name": "ONNX"}]}
    assert runtime_clashes(upper, [("t", triton)])  # EqualFold
    other_prio = {
        **old,
        "supportedModelFormats": [{**old["supportedModelFormats"][1], "priority": 3}],
    }
    assert runtime_clashes(other_prio, [("t", triton)]) == []
    mixed = {
        **old,
        "supportedModelFormats": [
            {"name": "onnx", "version": "1", "autoSelect": True, "priority": 3},
            {"name": "onnx", "version": "2", "autoSelect": True, "priority": 4},
        ],
    }
    assert any("different priorities" in r for r in runtime_clashes(mixed, [("t", triton)]))


def test_formats_kserve_also_claims_are_served_by_naming_the_runtime() -> None:
    """onnx is not auto-selected (Triton claims it); KServe still serves onnx with kfedge-edge
    when the InferenceService names it: with spec.predictor.model.runtime set, every listed
    format counts, autoSelect or not (pkg/apis/serving/v1beta1/predictor_model.go,
    RuntimeSupportsModel)."""
    claimed = {
        (f["name"].lower(), f.get("version"))
        for _, spec in _kserve_runtimes(
            "cluster_serving_runtimes", "optional_cluster_serving_runtimes"
        )
        for f in spec["supportedModelFormats"]
        if f.get("autoSelect")
    }
    for f in _runtime()["spec"]["supportedModelFormats"]:
        assert f["autoSelect"] is ((f["name"], f["version"]) not in claimed), f
    onnx_examples = [p for p in EXAMPLES.glob("isvc-*.yaml") if "name: onnx" in p.read_text()]
    assert onnx_examples
    for p in onnx_examples:  # named: kfedge-edge-onnx (onnx only, autoSelect false)
        runtime = yaml.safe_load(p.read_text())["spec"]["predictor"]["model"]["runtime"]
        assert runtime == "kfedge-edge-onnx"


def test_kserve_defaults_data_names_its_sources() -> None:
    text = (ROOT / "src" / "kfedge" / "data" / "kserve_defaults.yaml").read_text()
    assert "config/runtimes/kustomization.yaml" in text
    assert "servingruntime_webhook.go" in text and "pkg/credentials/s3" in text
    data = kserve_defaults()
    assert re.fullmatch(r"kserve/kserve@[0-9a-f]{40} config/runtimes/", data["source"])
    for _, spec in _kserve_runtimes("cluster_serving_runtimes"):
        for f in spec["supportedModelFormats"]:
            assert f["name"] and ("priority" not in f or isinstance(f["priority"], int))


# ---------------------------------------------------------------------------- kustomize tree
def _kustomizations() -> list[Path]:
    return sorted(MANIFESTS.rglob("kustomization.yaml"))


def test_every_kustomization_resolves_structurally() -> None:
    """Without kustomize: every resource / component path exists, components are Components,
    every generator's env file has a committed .example and is git-ignored."""
    ignored = (OVERLAYS / ".gitignore").read_text().split()
    for kz_path in _kustomizations():
        kz = yaml.safe_load(kz_path.read_text())
        here = kz_path.parent
        for res in kz.get("resources", []):
            target = (here / res).resolve()
            assert target.exists(), f"{kz_path}: resource {res} does not exist"
            if target.is_dir():
                assert (target / "kustomization.yaml").is_file(), f"{kz_path}: {res}"
            else:
                assert target.parent == here.resolve() or kz.get("kind") == "Component"
        for comp in kz.get("components", []):
            ckz = yaml.safe_load(((here / comp) / "kustomization.yaml").read_text())
            assert ckz["kind"] == "Component", f"{kz_path}: {comp} is not a Component"
        for gen in kz.get("secretGenerator", []):
            for env in gen.get("envs", []):
                rel = str((here / env).relative_to(MANIFESTS))
                assert rel in ENV_FILES, rel
                assert (here / f"{env}.example").is_file()
                assert Path(env).name in ignored
    overlays = {
        p.parent.relative_to(OVERLAYS).parts[0] for p in OVERLAYS.rglob("kustomization.yaml")
    }
    assert overlays == {"kubeflow-profile", "standalone"}


def test_no_secret_values_are_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "manifests"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [f for f in tracked if f.endswith("s3-credentials.env")]
    keys = kserve_defaults()["s3_credentials"]
    for env in ENV_FILES:
        example = (MANIFESTS / f"{env}.example").read_text()
        values = dict(
            line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
        )
        assert set(values) == {keys["access_key_id_key"], keys["secret_access_key_key"]}
        assert all(v.startswith("replace-with-") for v in values.values())
    for f in MANIFESTS.rglob("*.yaml"):
        assert all(d.get("kind") != "Secret" for d in _docs(f)), f"{f} commits a Secret"


def _needed_verbs() -> set[str]:
    """The verbs kfedge's code calls on InferenceServices (kubernetes client method names)."""
    verb = {"get": "get", "read": "get", "list": "list", "create": "create", "patch": "patch",
            "replace": "update", "delete": "delete"}  # fmt: skip
    found = set()
    for py in (ROOT / "src" / "kfedge").rglob("*.py"):
        for m in re.finditer(r"\.(\w+?)_(?:namespaced|cluster)_custom_object\(", py.read_text()):
            found.add(verb.get(m.group(1), m.group(1)))
    return found


def _needed_deployment_verbs() -> set[str]:
    """The verbs kfedge's code calls on Deployments (the predictor's rollout, in raw mode)."""
    verb = {"read": "get", "list": "list", "patch": "patch", "create": "create"}
    found = set()
    for py in (ROOT / "src" / "kfedge").rglob("*.py"):
        for m in re.finditer(r"\.(\w+?)_namespaced_deployment\(", py.read_text()):
            found.add(verb.get(m.group(1), m.group(1)))
    return found


def test_rbac_is_exactly_what_the_deploy_code_calls() -> None:
    """Least privilege: the Role lists the verbs the code calls (derived from src/kfedge), on
    InferenceServices only, in one namespace; Kubeflow's kubeflow-edit covers the same verbs."""
    needed = _needed_verbs()
    assert needed >= {"get", "create", "patch"}, needed
    (role,) = _docs(MANIFESTS / "rbac" / "role.yaml")
    assert role["kind"] == "Role"
    rule, apps = role["rules"]
    assert rule["apiGroups"] == ["serving.kserve.io"] and rule["resources"] == ["inferenceservices"]
    assert "*" not in rule["verbs"] and set(rule["verbs"]) == needed
    assert len(rule["verbs"]) == len(set(rule["verbs"]))
    assert apps["apiGroups"] == ["apps"] and apps["resources"] == ["deployments"]
    assert set(apps["verbs"]) == _needed_deployment_verbs() == {"get"}
    assert needed <= set(kserve_defaults()["kubeflow_edit_inferenceservices"]["verbs"])
    for f in MANIFESTS.rglob("*.yaml"):
        for d in _docs(f):
            assert (
                not d.get("kind", "").startswith("Cluster") or d["kind"] == "ClusterServingRuntime"
            )


def test_storage_service_account_lists_the_secret_and_carries_no_ignored_annotations() -> None:
    """KServe reads S3 settings from the Secret's annotations (or keys); a ServiceAccount's
    annotations only on the IRSA path (pkg/credentials/service_account_credentials.go)."""
    (sa,) = _docs(MANIFESTS / "storage" / "s3-serviceaccount.yaml")
    assert sa["secrets"] == [{"name": "kfedge-s3"}]
    assert not any(
        k.startswith("serving.kserve.io/") for k in sa["metadata"].get("annotations", {})
    )
    assert sa["automountServiceAccountToken"] is False


def _s3_annotations(component: str) -> dict[str, str]:
    kz = yaml.safe_load((MANIFESTS / "components" / component / "kustomization.yaml").read_text())
    (patch,) = kz["patches"]
    assert patch["target"] == {"kind": "Secret", "name": "kfedge-s3"}
    (op,) = yaml.safe_load(patch["patch"])
    assert op["path"] == "/metadata/annotations"
    return op["value"]


@pytest.mark.parametrize("component", ["s3-seaweedfs", "s3-minio"])
def test_s3_settings_are_annotations_kserve_reads(component: str) -> None:
    """Secret annotations named as in pkg/credentials/s3/s3_secret.go, endpoints as KFP ships
    its object store (manifests/kustomize third-party/seaweedfs, third-party/minio)."""
    s3 = kserve_defaults()["s3_credentials"]
    known = {s["annotation"] for s in s3["settings"]}
    ann = _s3_annotations(component)
    assert set(ann) <= known
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps"} <= set(ann)
    assert ann["serving.kserve.io/s3-usehttps"] == "0"  # KFP's stores speak plain HTTP
    endpoints = {
        e[k] for e in kserve_defaults()["kfp_object_store"] for k in ("endpoint", "also") if k in e
    }
    assert ann["serving.kserve.io/s3-endpoint"] in endpoints
    assert not ann["serving.kserve.io/s3-endpoint"].startswith(("http://", "https://"))


def _build(tree: Path, overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL_BIN, "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    for env in ENV_FILES:
        shutil.copy(copy / f"{env}.example", copy / env)
    return copy


def _check_storage(objs: list[dict[str, Any]], namespace: str) -> dict[str, Any]:
    s3 = kserve_defaults()["s3_credentials"]
    secret = next(o for o in objs if o["kind"] == "Secret")
    sa = next(o for o in objs if o["kind"] == "ServiceAccount")
    assert secret["metadata"]["name"] == "kfedge-s3" and sa["metadata"]["name"] == "kfedge-s3"
    assert secret["metadata"]["namespace"] == sa["metadata"]["namespace"] == namespace
    assert set(secret["data"]) == {s3["access_key_id_key"], s3["secret_access_key_key"]}
    assert secret["metadata"]["annotations"] == _s3_annotations("s3-seaweedfs")
    assert sa["secrets"] == [{"name": "kfedge-s3"}]
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kfedge" for o in objs)
    return secret


KUBECTL_BIN = clusterkit.kubectl()
KUBECTL = pytest.mark.skipif(
    KUBECTL_BIN is None,
    reason="kubectl (with kustomize) is not installed, nor built (make cluster-build)",
)


@KUBECTL
def test_kustomize_builds_the_standalone_overlay(tree: Path, reference_dir: Path) -> None:
    objs = _build(tree, "standalone")
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    assert kinds == [
        ("ClusterServingRuntime", "kfedge-edge"),
        ("ClusterServingRuntime", "kfedge-edge-litert"),
        ("ClusterServingRuntime", "kfedge-edge-onnx"),
        ("ClusterServingRuntime", "kfedge-edge-openvino"),
        ("Role", "kfedge-deployer"),
        ("RoleBinding", "kfedge-deployer"),
        ("Secret", "kfedge-s3"),
        ("ServiceAccount", "kfedge-s3"),
    ]
    _check_storage(objs, "kubeflow")
    v = crd_validator(reference_dir, "serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1")
    for rt in (o for o in objs if o["kind"] == "ClusterServingRuntime"):
        assert "namespace" not in rt["metadata"], "a cluster-scoped object got a namespace"
        assert not list(v.iter_errors(rt))
    rb = next(o for o in objs if o["kind"] == "RoleBinding")
    assert rb["metadata"]["namespace"] == "kubeflow"
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "kfedge-deployer",
    }
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
    ]


@KUBECTL
def test_kustomize_builds_the_kubeflow_profile_overlay(tree: Path) -> None:
    objs = _build(tree, "kubeflow-profile")
    assert sorted(o["kind"] for o in objs) == [
        "Secret",
        "ServiceAccount",
    ]  # kubeflow-edit does RBAC
    _check_storage(objs, "kubeflow-user-example-com")


@KUBECTL
def test_profile_overlay_variants_minio_and_own_rbac(tree: Path) -> None:
    """Another profile namespace, the MinIO component, and the profile-rbac component bound to
    that namespace's default-editor."""
    kz_path = tree / "overlays" / "kubeflow-profile" / "kustomization.yaml"
    kz = yaml.safe_load(kz_path.read_text())
    kz["namespace"] = "alice"
    kz["components"] = ["../../components/s3-minio", "../../components/profile-rbac"]
    kz_path.write_text(yaml.safe_dump(kz))
    objs = _build(tree, "kubeflow-profile")
    assert {o["metadata"]["namespace"] for o in objs} == {"alice"}
    secret = next(o for o in objs if o["kind"] == "Secret")
    assert secret["metadata"]["annotations"] == _s3_annotations("s3-minio")
    rb = next(o for o in objs if o["kind"] == "RoleBinding")
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "default-editor", "namespace": "alice"}
    ]
    role = next(o for o in objs if o["kind"] == "Role")
    assert role["rules"] == _docs(MANIFESTS / "rbac" / "role.yaml")[0]["rules"]


def test_examples_are_current_and_fit_the_crd(tmp_path: Path, reference_dir: Path) -> None:
    pytest.importorskip("kserve")
    from kfedge.deploy import write_examples

    fresh = write_examples(tmp_path)
    assert sorted(p.name for p in fresh) == sorted(f"isvc-{t}.yaml" for t in list_targets())
    v = crd_validator(reference_dir, "serving.kserve.io_inferenceservices.yaml", "v1beta1")
    for p in fresh:
        committed = EXAMPLES / p.name
        assert committed.exists() and committed.read_text() == p.read_text(), (
            f"{committed} is stale: run `python -m kfedge.deploy examples manifests/examples`"
        )
        isvc = yaml.safe_load(p.read_text())
        assert not list(v.iter_errors(isvc)), p.name
        model = isvc["spec"]["predictor"]["model"]
        # the one-runtime ClusterServingRuntime of the model's format, from manifests/base
        runtime = next(r for r in _slim_runtimes() if r["metadata"]["name"] == model["runtime"])
        assert [f["name"] for f in runtime["spec"]["supportedModelFormats"]] == [
            model["modelFormat"]["name"]
        ]


# ----------------------------------------------------------------------------------- images
def test_image_catalog_matches_the_dockerfiles_and_the_version() -> None:
    from kfedge._version import COMPONENT_IMAGE, SERVING_IMAGE

    by_name = {s.name: s for s in image_catalog()}
    assert by_name["component"].reference() == COMPONENT_IMAGE
    assert by_name["serving"].reference() == SERVING_IMAGE
    assert image_for_ref("registry.local:5000/team/kfedge-serving:9.9") is by_name["serving"]
    assert image_for_ref("docker.io/library/python:3.11") is None
    for spec in image_catalog():
        assert (ROOT / spec.dockerfile).is_file()
        text = (ROOT / spec.dockerfile).read_text()
        assert f"--platform {','.join(spec.platforms)}" in text, spec.dockerfile
    assert by_name["serving"].tensorflow is False
    assert by_name["serving"].builds_for("amd64") and by_name["serving"].builds_for("arm64")
    # one image per runtime, the smallest that serves a format; the full image serves all
    from kfedge.images import serving_image_for

    assert set(by_name["serving"].formats) == {"tflite", "onnx", "openvino"}
    for fmt, name in [("tflite", "serving-litert"), ("onnx", "serving-onnx")]:
        assert serving_image_for(fmt) is by_name[name]
        assert by_name[name].formats == (fmt,) and not by_name[name].tensorflow
        args = dict(by_name[name].build_args)
        assert args["FORMATS"] == fmt and args["KFP"] == "0"
    assert serving_image_for("openvino") is by_name["serving-openvino"]
    with pytest.raises(Exception, match="no kfedge image serves 'savedmodel'"):
        serving_image_for("savedmodel")


def test_buildx_commands_take_the_registry() -> None:
    from kfedge.images import buildx_commands, main

    cmds = buildx_commands("registry.example/me", push=True)
    assert [c[c.index("-t") + 1] for c in cmds] == [
        s.reference("registry.example/me") for s in image_catalog()
    ]
    for cmd, spec in zip(cmds, image_catalog(), strict=True):
        assert cmd[:4] == ["docker", "buildx", "build", "--platform"]
        assert cmd[4] == ",".join(spec.platforms) and cmd[-2:] == ["--push", "."]
        args = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--build-arg"]
        assert args == [f"{k}={v}" for k, v in spec.build_args]
    assert main(["build", "--registry", "r.example", "serving"]) == 0
    assert main(["build", "nope"]) == 2


def _node_pinned_images(path: Path) -> dict[str, str]:
    """executor label -> image, for executors kfp-kubernetes places on the target node."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    spec = docs[0]
    k8s = next((d for d in docs if "platforms" in d), {}).get("platforms", {}).get("kubernetes", {})
    pinned = {
        label
        for label, cfg in k8s.get("deploymentSpec", {}).get("executors", {}).items()
        if "nodeSelector" in cfg
    }
    execs = spec["deploymentSpec"]["executors"]
    return {label: execs[label]["container"]["image"] for label in pinned}


@pytest.mark.parametrize("target", list_targets())
def test_tasks_pinned_to_the_target_node_get_an_image_built_for_its_arch(target: str) -> None:
    """Over every target profile: a node-pinned task's image (compiled pipelines/*.yaml) and the
    serving image are built for the target node's architecture (kfedge/data/images.yaml)."""
    tgt = load_target(target)
    seen = 0
    for path in PIPELINES:
        for label, image in _node_pinned_images(path).items():
            spec = image_for_ref(image)
            assert spec is not None, f"{path.name} {label}: {image} is not a kfedge image"
            assert spec.builds_for(tgt.arch), (
                f"{path.name} {label} runs {image}, built for {spec.platforms} only, on a "
                f"{tgt.arch} node (target {target})"
            )
            seen += 1
    assert seen, "no node-pinned task found"
    serving = image_for_ref(tgt.runtime_image)
    if serving is not None:
        assert serving.builds_for(tgt.arch)


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_evaluation_on_the_edge_node_runs_the_serving_runtime_image(path: Path) -> None:
    """evaluate / benchmark (edge-fleet: measure, which does both) run without TensorFlow."""
    spec = [d for d in yaml.safe_load_all(path.read_text()) if d][0]
    evals = {
        label: ex["container"]["image"]
        for label, ex in spec["deploymentSpec"]["executors"].items()
        if label.startswith(("exec-evaluate", "exec-benchmark", "exec-measure"))
    }
    assert evals
    for label, image in evals.items():
        assert image_for_ref(image).tensorflow is False, f"{label} runs {image}"


def test_serving_image_is_slim_multiarch_and_non_root() -> None:
    text = (IMAGES / "Dockerfile.serving").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines  # official multi-arch base
    assert "ARG EXTRA=serving" in lines  # the default build is the every-runtime image
    assert any('requirements.py "${EXTRA}" >' in ln for ln in lines)
    assert any("slim.py check ${FORMATS}" in ln for ln in lines)  # serves these, no other runtime
    assert "tensorflow" not in " ".join(ln for ln in lines if "pip install" in ln).lower()
    assert not any(ln.startswith("HEALTHCHECK") for ln in lines)
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["/usr/local/bin/kfedge-entrypoint"]' in lines
    assert not any(ln.startswith("# syntax=") for ln in text.splitlines())  # offline builds
    uid = int(user[-1].split()[1].split(":")[0])
    assert _runtime()["spec"]["containers"][0]["securityContext"]["runAsUser"] == uid


def test_component_image_has_the_tf_stack_and_the_context_is_an_allow_list() -> None:
    text = (IMAGES / "Dockerfile.component").read_text()
    assert "optimize" in text and "pipelines" in text and "serving" in text
    assert any(ln.startswith("USER ") for ln in text.splitlines())
    assert not any(ln.startswith("# syntax=") for ln in text.splitlines())  # offline builds
    # The legacy builder reads only the root .dockerignore: it must deny all, then allow sources.
    assert not list(IMAGES.glob("*.dockerignore"))
    text = (ROOT / ".dockerignore").read_text()
    ignore = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "**"
    assert "!src/" in ignore and "!serving/" in ignore


def test_build_context_is_the_sources_only(tmp_path: Path) -> None:
    """context_files follows the root .dockerignore: no venv, caches or tests; the digest moves."""
    from kfedge.images import context_digest, context_files

    files = {str(p.relative_to(ROOT)) for p in context_files(ROOT)}
    assert "pyproject.toml" in files and "images/entrypoint.sh" in files
    assert "src/kfedge/images.py" in files
    assert not any(f.startswith((".venv", "tests/", ".git/")) for f in files)
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    a = context_digest(ROOT, "images/Dockerfile.serving", "base:1")
    assert a == context_digest(ROOT, "images/Dockerfile.serving", "base:1")
    assert a != context_digest(ROOT, "images/Dockerfile.serving", "base:2")
    assert a != context_digest(ROOT, "images/Dockerfile.component", "base:1")
    assert a != context_digest(ROOT, "images/Dockerfile.serving", "base:1", (("EXTRA", "x"),))


def test_serving_entrypoint_runs_commands_and_serves_options(tmp_path: Path) -> None:
    """Options start the server (KServe's args); a command runs as given (kfp.local's CMD)."""
    script = IMAGES / "entrypoint.sh"
    assert script.stat().st_mode & 0o111
    out = subprocess.run(["sh", str(script), "echo", "step"], capture_output=True, text=True)
    assert out.stdout == "step\n"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\necho "python $*"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run(["sh", str(script), "--model_dir=/m"], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert out.stdout == "python -m kfedge.serving --model_dir=/m\n"


@pytest.mark.parametrize("name", ["Dockerfile.serving", "Dockerfile.component"])
def test_dockerfiles_parse_with_buildkit_parser_and_copy_what_exists(name: str) -> None:
    """Both Dockerfiles parse with the official parser; COPY sources exist; final stage non-root."""
    import dockerfile

    cmds = dockerfile.parse_file(str(IMAGES / name))
    stages = [i for i, c in enumerate(cmds) if c.cmd.upper() == "FROM"]
    assert len(stages) == 2, "a build stage and a slim runtime stage"
    final = cmds[stages[-1] :]
    users = [c.value[0] for c in final if c.cmd.upper() == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    root = IMAGES.parent
    for c in cmds:
        if c.cmd.upper() == "COPY" and not any(f.startswith("--from") for f in c.flags):
            for src in c.value[:-1]:
                assert (root / src).exists(), f"{name}: COPY {src} does not exist in the repo"


def test_image_requirements_follow_the_extras() -> None:
    """images/requirements.py (the images' dependency layer) expands the extras of pyproject."""
    out = subprocess.run(
        [sys.executable, str(IMAGES / "requirements.py"), "serving"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert any(r.startswith("kserve") for r in out) and any(r.startswith("numpy") for r in out)
    assert not any(r.startswith(("tensorflow", "tf-keras")) for r in out)
    full = subprocess.run(
        [sys.executable, str(IMAGES / "requirements.py"), "all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert any(r.startswith("tensorflow") for r in full) and any(r.startswith("kfp") for r in full)
    assert not any(r.startswith("kfedge") for r in full)
