"""manifests/ (kustomize tree) and images/: schema-valid, consistent with the code, no secrets."""

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "manifests" / "base"
EXAMPLES = ROOT / "manifests" / "examples"
IMAGES = ROOT / "images"


def _strip_x(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_x(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_strip_x(v) for v in node]
    return node


@functools.lru_cache(maxsize=4)
def crd_validator(reference_dir: Path, file: str, version: str) -> Any:
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((reference_dir / "kserve" / file).read_text(), Loader=loader)  # noqa: S506
    ver = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return jsonschema.Draft7Validator(_strip_x(ver["schema"]["openAPIV3Schema"]))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


def _runtime() -> dict[str, Any]:
    return _docs(BASE / "clusterservingruntime.yaml")[0]


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
    assert {f["name"] for f in spec["supportedModelFormats"]} == set(DEPLOYABLE)
    assert all(f["autoSelect"] for f in spec["supportedModelFormats"])
    assert spec["protocolVersions"] == ["v1", "v2"]
    (c,) = spec["containers"]
    assert c["name"] == "kserve-container"
    assert c["image"] == SERVING_IMAGE
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
    # a read-only root needs a writable /tmp (downloads, HOME)
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"])


def test_kustomization_resources_exist_and_references_resolve() -> None:
    kz = _kustomization()
    objs = [d for f in kz["resources"] for d in _docs(BASE / f)]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("ClusterServingRuntime", "kfedge-edge") in kinds
    assert ("ServiceAccount", "kfedge-s3") in kinds
    assert ("ServiceAccount", "kfedge-deployer") in kinds
    (gen,) = kz["secretGenerator"]
    assert gen["name"] == "kfedge-s3" and kz["generatorOptions"]["disableNameSuffixHash"]
    # the storage-initializer service account lists the generated secret
    sa = next(
        o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "kfedge-s3"
    )
    assert sa["secrets"] == [{"name": gen["name"]}]
    assert sa["metadata"]["namespace"] == gen["namespace"]
    assert sa["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
    # the RoleBinding binds the Role it names, to the deployer account that exists
    rb = next(o for o in objs if o["kind"] == "RoleBinding")
    role = next(o for o in objs if o["kind"] == "Role")
    assert rb["roleRef"]["name"] == role["metadata"]["name"]
    assert rb["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert {"kind": "ServiceAccount", "name": "kfedge-deployer", "namespace": "kubeflow"} in rb[
        "subjects"
    ]


def test_rbac_is_least_privilege() -> None:
    from kfedge.deploy import DEFAULT_SERVICE_ACCOUNT

    objs = _docs(BASE / "rbac.yaml")
    assert not any(o["kind"].startswith("Cluster") for o in objs), "nothing cluster-wide"
    (role,) = [o for o in objs if o["kind"] == "Role"]
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"],
        }
    ]
    assert DEFAULT_SERVICE_ACCOUNT == "kfedge-s3"


def test_no_secret_values_are_committed() -> None:
    kz = _kustomization()
    env_file = kz["secretGenerator"][0]["envs"][0]
    assert not (BASE / env_file).exists() or env_file in (BASE / ".gitignore").read_text()
    assert env_file in (BASE / ".gitignore").read_text().split()
    example = (BASE / f"{env_file}.example").read_text()
    values = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert set(values) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert all(v.startswith("replace-with-") for v in values.values())
    for f in BASE.glob("*.yaml"):
        assert all(d.get("kind") != "Secret" for d in _docs(f)), f"{f} commits a Secret"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_build_renders_every_object(tmp_path: Path, reference_dir: Path) -> None:
    tree = tmp_path / "base"
    shutil.copytree(BASE, tree)
    shutil.copy(tree / "s3-credentials.env.example", tree / "s3-credentials.env")
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    assert kinds == sorted(
        [
            ("ClusterServingRuntime", "kfedge-edge"),
            ("Role", "kfedge-deployer"),
            ("RoleBinding", "kfedge-deployer"),
            ("Secret", "kfedge-s3"),
            ("ServiceAccount", "kfedge-deployer"),
            ("ServiceAccount", "kfedge-s3"),
        ]
    )
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kfedge" for o in objs)
    secret = next(o for o in objs if o["kind"] == "Secret")
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    rt = next(o for o in objs if o["kind"] == "ClusterServingRuntime")
    v = crd_validator(reference_dir, "serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1")
    assert not list(v.iter_errors(rt))


def test_examples_are_current_and_fit_the_crd(tmp_path: Path, reference_dir: Path) -> None:
    pytest.importorskip("kserve")
    from kfedge.deploy import write_examples
    from kfedge.targets import list_targets

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
        assert isvc["spec"]["predictor"]["model"]["runtime"] == _runtime()["metadata"]["name"]


def test_serving_image_is_slim_multiarch_and_non_root() -> None:
    text = (IMAGES / "Dockerfile.serving").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines  # official multi-arch base
    assert any('".[serving]"' in ln for ln in lines)
    assert "tensorflow" not in " ".join(ln for ln in lines if "pip install" in ln).lower()
    assert not any(ln.startswith("HEALTHCHECK") for ln in lines)
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["python", "-m", "kfedge.serving"]' in lines
    assert "--platform linux/amd64,linux/arm64" in text
    # the runtime's runAsUser is the image's user
    uid = int(user[-1].split()[1].split(":")[0])
    assert _runtime()["spec"]["containers"][0]["securityContext"]["runAsUser"] == uid


def test_component_image_has_the_tf_stack_and_dockerignores_exist() -> None:
    text = (IMAGES / "Dockerfile.component").read_text()
    assert "optimize" in text and "pipelines" in text and "serving" in text
    assert any(ln.startswith("USER ") for ln in text.splitlines())
    for name in ("Dockerfile.serving.dockerignore", "Dockerfile.component.dockerignore"):
        ignore = (IMAGES / name).read_text().split()
        assert ignore[ignore.index("**") if "**" in ignore else 0] == "**"
        assert "!src/" in ignore and "!serving/" in ignore


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
