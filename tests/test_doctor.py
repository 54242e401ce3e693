"""kfedge doctor against a FAKE Kubernetes API and a FAKE KFP API on loopback.

The fakes answer like the real servers for what doctor reads: KFP's GET /apis/v2beta1/healthz
(``{"commit_sha", "tag_name", "multi_user", "pipeline_store"}``, backend/src/apiserver/main.go),
Kubernetes discovery (APIResourceList), GET of named objects, node lists filtered by an
equality label selector, 404 / 403 as ``Status`` objects. Nothing here is a real cluster.
"""

from __future__ import annotations

import base64
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_apis import send_json, write_kubeconfig

from kfedge.doctor import Finding, main, run_doctor

ROOT = Path(__file__).resolve().parents[1]
NS = "kubeflow-user-example-com"
SECRET_VALUE = "s3cr3t-value-never-printed"


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
            "message": message, "code": code}  # fmt: skip


class FakeCluster:
    """A fake KFP + Kubernetes API (one loopback server, the two APIs' paths)."""

    def __init__(self) -> None:
        self.kfp_health: dict[str, Any] = {
            "commit_sha": "0123abc",
            "tag_name": "2.17.0",
            "multi_user": True,
            "pipeline_store": "database",
        }
        self.objects: dict[str, Any] = {}
        self.nodes: list[dict[str, Any]] = []
        self.forbidden: set[str] = set()
        #: Paths answered 503 this many more times (an API server under load).
        self.busy: dict[str, int] = {}
        self.requests: list[str] = []
        self.discovery = {
            "v1beta1": ["inferenceservices", "inferenceservices/status"],
            "v1alpha1": ["clusterservingruntimes", "servingruntimes", "trainedmodels"],
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                fake.requests.append(self.path)
                code, body = fake.answer(url.path, urllib.parse.parse_qs(url.query))
                send_json(self, code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/apis/v2beta1/healthz":
            return 200, self.kfp_health
        if self.busy.get(path, 0) > 0:
            self.busy[path] -= 1
            return 503, _status(503, "ServiceUnavailable", "the server is currently unable")
        if any(path.startswith(p) for p in self.forbidden):
            return 403, _status(403, "Forbidden", f'User "me" cannot get resource at {path}')
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.4"}
        if path.startswith("/apis/serving.kserve.io/") and path.count("/") == 3:
            version = path.rsplit("/", 1)[1]
            if version not in self.discovery:
                return 404, _status(
                    404, "NotFound", "the server could not find the requested resource"
                )
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"serving.kserve.io/{version}",
                "resources": [
                    {"name": n, "namespaced": True, "verbs": ["get"]}
                    for n in self.discovery[version]
                ],
            }
        if path == "/api/v1/nodes":
            sel = dict(
                kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if kv
            )
            items = [
                n
                for n in self.nodes
                if all(n["metadata"]["labels"].get(k) == v for k, v in sel.items())
            ]
            return 200, {"kind": "NodeList", "apiVersion": "v1", "items": items}
        if path in self.objects:
            return 200, self.objects[path]
        return 404, _status(404, "NotFound", f"{path.rsplit('/', 1)[-1]} not found")

    def kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url)

    # ------------------------------------------------------------------ a healthy cluster
    def healthy(self, target: str = "nvidia-jetson") -> None:
        from kfedge.targets import load_target

        tgt = load_target(target)
        for f in ("clusterservingruntime.yaml", "clusterservingruntimes-slim.yaml"):
            for rt in yaml.safe_load_all((ROOT / "manifests/base" / f).read_text()):
                name = rt["metadata"]["name"]
                self.objects[f"/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/{name}"] = rt
        alloc = {"cpu": "6", "memory": "16Gi"}
        if tgt.accelerator:
            alloc[tgt.accelerator.resource] = str(tgt.accelerator.count)
        self.nodes = [
            {
                "metadata": {"name": "edge-1", "labels": tgt.k8s_node_selector()},
                # the taints the target tolerates (GPU nodes: nvidia.com/gpu:NoSchedule)
                "spec": {"taints": [{"key": t.key, "effect": t.effect} for t in tgt.tolerations]},
                "status": {"allocatable": alloc},
            },
            {"metadata": {"name": "x86-1", "labels": {"kubernetes.io/arch": "amd64"}}, "spec": {}},
        ]
        if tgt.devices.runtime_class:
            self.objects[f"/apis/node.k8s.io/v1/runtimeclasses/{tgt.devices.runtime_class}"] = {
                "kind": "RuntimeClass",
                "handler": "nvidia",
                "metadata": {"name": tgt.devices.runtime_class},
            }
        enc = base64.b64encode(SECRET_VALUE.encode()).decode()
        self.objects[f"/api/v1/namespaces/{NS}/secrets/kfedge-s3"] = {
            "kind": "Secret",
            "metadata": {
                "name": "kfedge-s3",
                "namespace": NS,
                "annotations": {
                    "serving.kserve.io/s3-endpoint": "seaweedfs.kubeflow:8333",
                    "serving.kserve.io/s3-usehttps": "0",
                },
            },
            "data": {"AWS_ACCESS_KEY_ID": enc, "AWS_SECRET_ACCESS_KEY": enc},
        }
        self.objects[f"/api/v1/namespaces/{NS}/serviceaccounts/kfedge-s3"] = {
            "kind": "ServiceAccount",
            "metadata": {"name": "kfedge-s3", "namespace": NS},
            "secrets": [{"name": "kfedge-s3"}],
        }
        # a Kubeflow profile namespace (kubeflow/manifests profile controller labels)
        self.objects[f"/api/v1/namespaces/{NS}"] = {
            "kind": "Namespace",
            "metadata": {
                "name": NS,
                "labels": {
                    "istio-injection": "enabled",
                    "pod-security.kubernetes.io/enforce": "baseline",
                },
            },
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeCluster, Path]]:
    for var in ("KF_PIPELINES_ENDPOINT", "KF_PIPELINES_TOKEN", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeCluster()
    yield fake, fake.kubeconfig(tmp_path / "kubeconfig")
    fake.close()


def _run(
    fake: FakeCluster, kubeconfig: Path, target: str = "nvidia-jetson", **kw: Any
) -> list[Finding]:
    return run_doctor(target, namespace=NS, kfp_host=fake.url, kubeconfig=kubeconfig, **kw)


def _by(findings: list[Finding], level: str) -> list[Finding]:
    return [f for f in findings if f.level == level]


def test_a_healthy_cluster_passes_every_check(cluster: tuple[FakeCluster, Path]) -> None:
    fake, kc = cluster
    fake.healthy()
    findings = _run(fake, kc)
    assert _by(findings, "fail") == [], [f.line() for f in findings]
    checks = {f.check for f in _by(findings, "ok")}
    assert checks >= {"kfp", "kserve", "runtime", "nodes", "runtime-class", "s3-secret",
                      "s3-serviceaccount", "images"}  # fmt: skip
    # the GPU node is tainted nvidia.com/gpu:NoSchedule and jetson tolerates it
    assert any("edge-1" in f.message for f in findings if f.check == "nodes")
    assert any("nvidia.com/gpu x1 allocatable" in f.message for f in findings)
    # the node list asked the API server for the target's labels
    assert any("labelSelector=kubernetes.io%2Farch%3Darm64" in r for r in fake.requests)


def test_an_empty_cluster_fails_each_check_with_its_fix(cluster: tuple[FakeCluster, Path]) -> None:
    fake, kc = cluster
    fake.kfp_health["tag_name"] = "2.5.0"
    fake.discovery.pop("v1beta1")
    findings = _run(fake, kc)
    lines = "\n".join(f.line() for f in findings)
    kfp = next(f for f in findings if f.check == "kfp" and f.level == "fail")
    assert "2.5.0" in kfp.message and "upgrade Kubeflow Pipelines" in kfp.fix
    # the Jetson is arm64: KFP's launcher and driver images are amd64-only before 2.17
    arm = [f for f in findings if f.check == "kfp" and "exec format error" in f.message]
    assert arm and arm[0].level == "fail" and ">= 2.17" in arm[0].fix
    kserve = next(f for f in findings if f.check == "kserve")
    assert kserve.level == "fail" and "KServe is not installed" in kserve.message
    nodes = next(f for f in findings if f.check == "nodes")
    assert nodes.level == "fail" and "kubectl label node NODE" in nodes.fix
    assert "nvidia.com/gpu.family=ampere" in nodes.fix
    rc = next(f for f in findings if f.check == "runtime-class")
    assert rc.level == "fail" and "nvidia" in rc.message
    s3 = next(f for f in findings if f.check == "s3-secret")
    assert s3.level == "fail" and "manifests/overlays/kubeflow-profile" in s3.fix
    assert all(" -> fix: " in f.line() for f in _by(findings, "fail")), lines
    assert all("\n" not in f.line() for f in findings)


def test_runtime_missing_or_unreadable(cluster: tuple[FakeCluster, Path]) -> None:
    fake, kc = cluster
    fake.healthy()
    # deploy names the one-runtime runtime of each of the target's formats: each is checked
    del fake.objects["/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/kfedge-edge-onnx"]
    findings = [f for f in _run(fake, kc) if f.check == "runtime"]
    (rt,) = [f for f in findings if f.level != "ok"]
    assert rt.level == "fail" and rt.fix == "a cluster admin runs: kubectl apply -k manifests/base"
    assert "kfedge-edge-onnx is not installed" in rt.message
    assert any("kfedge-edge-litert serves ['tflite']" in f.message for f in findings)
    fake.forbidden.add("/apis/serving.kserve.io/v1alpha1/clusterservingruntimes")
    rt = next(f for f in _run(fake, kc) if f.check == "runtime")
    assert rt.level == "warn" and "ask a cluster admin" in rt.fix


def test_nodes_tainted_cordoned_or_without_the_accelerator(
    cluster: tuple[FakeCluster, Path],
) -> None:
    fake, kc = cluster
    fake.healthy("nvidia-gpu")
    fake.nodes[0]["spec"]["taints"].append(
        {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    )
    nodes = [f for f in _run(fake, kc, "nvidia-gpu") if f.check == "nodes"]
    assert [f.level for f in nodes] == ["fail"] and "dedicated:NoSchedule" in nodes[0].message
    fake.healthy("nvidia-gpu")
    fake.nodes[0]["status"]["allocatable"]["nvidia.com/gpu"] = "0"
    nodes = [f for f in _run(fake, kc, "nvidia-gpu") if f.check == "nodes"]
    assert [f.level for f in nodes] == ["ok", "fail"]
    assert "device plugin" in nodes[1].fix
    fake.healthy("nvidia-gpu")
    fake.forbidden.add("/api/v1/nodes")
    nodes = [f for f in _run(fake, kc, "nvidia-gpu") if f.check == "nodes"]
    assert [f.level for f in nodes] == ["warn"]


def test_s3_secret_as_kserve_reads_it(cluster: tuple[FakeCluster, Path], capsys: Any) -> None:
    fake, kc = cluster
    fake.healthy("cpu-arm64")
    path = f"/api/v1/namespaces/{NS}/secrets/kfedge-s3"
    del fake.objects[path]["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"]
    s3 = [f for f in _run(fake, kc, "cpu-arm64") if f.check == "s3-secret"]
    assert s3[0].level == "fail" and "https" in s3[0].message and 's3-usehttps: "0"' in s3[0].fix
    fake.objects[path]["metadata"]["annotations"] = {}
    s3 = [f for f in _run(fake, kc, "cpu-arm64") if f.check == "s3-secret"]
    assert s3[0].level == "fail" and "AWS S3" in s3[0].message
    fake.objects[path]["data"] = {"accesskey": "eA==", "secretkey": "eA=="}  # KFP's own key names
    s3 = [f for f in _run(fake, kc, "cpu-arm64") if f.check == "s3-secret"]
    assert "AWS_ACCESS_KEY_ID" in s3[0].message
    fake.objects[f"/api/v1/namespaces/{NS}/serviceaccounts/kfedge-s3"]["secrets"] = []
    sa = next(f for f in _run(fake, kc, "cpu-arm64") if f.check == "s3-serviceaccount")
    # deploy names the Secret by annotation: not listing it is fine (tests/test_cluster.py)
    assert sa.level == "ok" and "by annotation" in sa.message
    fake.healthy("cpu-arm64")
    rc = main(
        ["--target", "cpu-arm64", "--namespace", NS, "--host", fake.url, "--kubeconfig", str(kc)]
    )
    out = capsys.readouterr().out
    assert rc == 0 and SECRET_VALUE not in out
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in out


def test_kfp_version_unknown_multi_user_namespace_and_unreachable(
    cluster: tuple[FakeCluster, Path],
) -> None:
    fake, kc = cluster
    fake.healthy()
    fake.kfp_health["tag_name"] = "unknown"
    findings = run_doctor("nvidia-jetson", namespace="kubeflow", kfp_host=fake.url, kubeconfig=kc)
    kfp = [f for f in findings if f.check == "kfp"]
    assert [f.level for f in kfp] == ["warn", "warn"]
    assert "does not say its version" in kfp[0].message and "--namespace" in kfp[1].fix
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    findings = run_doctor("cpu-amd64", kfp_host=f"http://127.0.0.1:{closed}", kube=False)
    kfp = next(f for f in findings if f.check == "kfp")
    assert kfp.level == "fail" and "connection refused" in kfp.message


def test_the_pipeline_decides_the_kfp_version_it_needs(
    cluster: tuple[FakeCluster, Path], tmp_path: Path
) -> None:
    """A pipeline whose loop has a display name needs KFP 2.16 (kfedge.support, PR #12808)."""
    fake, kc = cluster
    fake.healthy()
    fake.kfp_health["tag_name"] = "2.15.0"
    docs = list(yaml.safe_load_all((ROOT / "pipelines/edge-optimize-deploy.yaml").read_text()))
    docs[0]["root"]["dag"]["tasks"]["for-loop-1"]["taskInfo"]["name"] = "technique"
    named = tmp_path / "named.yaml"
    named.write_text(yaml.safe_dump_all(docs))
    kfp = next(f for f in _run(fake, kc, pipeline=named) if f.check == "kfp")
    assert kfp.level == "fail" and "2.16" in kfp.message and "loop-name" in kfp.message
    docs[0]["root"]["dag"]["tasks"]["for-loop-1"]["taskInfo"]["name"] = "for-loop-1"
    named.write_text(yaml.safe_dump_all(docs))
    kfp = next(f for f in _run(fake, kc, pipeline=named) if f.check == "kfp")
    assert kfp.level == "ok"


def test_no_kubernetes_api_is_one_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    findings = run_doctor("cpu-amd64", kubeconfig=tmp_path / "missing")
    kube = [f for f in findings if f.check == "kubernetes"]
    assert len(kube) == 1 and kube[0].level == "fail"
    assert any(f.check == "kfp" and f.level == "warn" for f in findings)


def test_images_against_the_target_arch(tmp_path: Path) -> None:
    from kfedge.targets import target_yaml

    findings = run_doctor("cpu-arm64", kube=False)
    images = [f for f in findings if f.check == "images"]
    assert [f.level for f in images] == ["ok", "ok"] and "linux/arm64" in images[0].message
    data = yaml.safe_load(target_yaml("cpu-arm64"))
    data["runtime_image"] = "docker.io/someone/server:1"
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(data))
    images = [f for f in run_doctor(mine, kube=False) if f.check == "images"]
    assert (
        images[1].level == "warn"
        and "imagetools inspect docker.io/someone/server:1" in images[1].fix
    )


def test_main_exit_codes(cluster: tuple[FakeCluster, Path], capsys: Any) -> None:
    fake, kc = cluster
    assert main(["--target", "nope"]) == 2
    assert "unknown target" in capsys.readouterr().err
    rc = main(
        ["--target", "cpu-amd64", "--namespace", NS, "--host", fake.url, "--kubeconfig", str(kc)]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[-1].endswith("ok") and "failed" in out[-1]
    assert all(ln.split()[0] in ("OK", "WARN", "FAIL") for ln in out[:-1])


def test_a_busy_api_server_is_asked_again_a_refusal_is_not(
    cluster: tuple[FakeCluster, Path],
) -> None:
    fake, kc = cluster
    fake.healthy()
    fake.busy["/api/v1/nodes"] = 2
    findings = _run(fake, kc)
    assert not _by(findings, "fail"), [f.line() for f in _by(findings, "fail")]
    assert sum(r.startswith("/api/v1/nodes?") for r in fake.requests) >= 3  # 503, 503, answer
    fake.requests.clear()
    fake.forbidden.add("/api/v1/nodes")
    nodes = [f for f in _run(fake, kc) if f.check == "nodes"]
    assert nodes and nodes[0].level in ("warn", "fail")
    assert sum(r.startswith("/api/v1/nodes") for r in fake.requests) == 1  # 403: asked once


def test_namespace_labels_against_the_target(
    cluster: tuple[FakeCluster, Path], tmp_path: Path
) -> None:
    """Pod Security baseline refuses Coral's privileged hostPath pod (the real API server's
    refusal is in tests/test_cluster.py); a control-plane label hides the namespace from
    KServe's pod webhook; Istio injection is reported as handled."""
    fake, kc = cluster
    fake.healthy("coral-edgetpu")
    found = {f.check: f for f in _run(fake, kc, "coral-edgetpu")}
    assert "pod-security" not in found  # the device-plugin variant needs no privilege
    from kfedge.targets import target_yaml

    privileged = tmp_path / "coral-privileged.yaml"
    data = yaml.safe_load(target_yaml("coral-edgetpu"))
    data["devices"] = {"host_paths": [{"path": "/dev/bus/usb"}], "privileged": True}
    privileged.write_text(yaml.safe_dump(data))
    found = {f.check: f for f in _run(fake, kc, str(privileged))}
    assert found["pod-security"].level == "fail"
    assert "'baseline'" in found["pod-security"].message
    assert "device plugin" in found["pod-security"].fix
    assert found["istio"].level == "ok"
    fake.objects[f"/api/v1/namespaces/{NS}"]["metadata"]["labels"] = {"control-plane": "kubeflow"}
    found = {f.check: f for f in _run(fake, kc, "cpu-arm64")}
    assert found["namespace"].level == "fail" and "control-plane" in found["namespace"].message
    del fake.objects[f"/api/v1/namespaces/{NS}"]["metadata"]["labels"]
    found = {f.check: f for f in _run(fake, kc, "cpu-arm64")}
    assert found["namespace"].level == "ok"
