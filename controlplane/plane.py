"""Start and stop a real Kubernetes + KServe control plane on 127.0.0.1.

What runs (each an upstream program built by :mod:`controlplane.build`):

* etcd; kube-apiserver with RBAC (``--authorization-mode=Node,RBAC``) and its default
  admission plugins, Pod Security among them; kube-controller-manager (Deployments,
  ReplicaSets, service accounts, garbage collection); kube-scheduler;
* KServe's controller manager (``cmd/manager``) with KServe's CRDs, its
  ``inferenceservice-config`` ConfigMap (default deployment mode ``Standard``, i.e. raw
  Deployments, no Ingress) and its admission webhooks, called by the API server at
  ``https://127.0.0.1:<port>`` (KServe's ``config/webhook/manifests.yaml`` with the service
  reference replaced by that URL and this CA);
* kwok, which keeps the fake nodes of :data:`NODES` (shaped like the edge targets: labels,
  taints, extended resources) Ready and moves their pods to Running and Ready. No container
  runs: a predictor pod is scheduled, admitted, mutated and marked Ready, nothing answers on it.

Everything listens on 127.0.0.1 except KServe's webhook server: ``cmd/manager`` (v0.20.0,
``webhook.NewServer(webhook.Options{Port: ...})``) offers no flag for its bind address, so it
listens on every interface of this machine, on a random free port, for the test's duration.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane import build, pki

KSERVE_NAMESPACE = "kserve"
#: Annotation kwok selects its nodes by.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class Node:
    """A fake node: labels, taints and extended resources like a real one of its class."""

    name: str
    arch: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[tuple[str, str], ...] = ()  # (key, effect)
    resources: Mapping[str, str] = field(default_factory=dict)


#: One node per class of edge device the target profiles describe.
NODES: tuple[Node, ...] = (
    Node("amd64-amd", "amd64", {"feature.node.kubernetes.io/cpu-model.vendor_id": "AMD"}),
    Node("amd64-intel", "amd64", {"feature.node.kubernetes.io/cpu-model.vendor_id": "Intel"}),
    Node(
        "amd64-intel-npu",
        "amd64",
        {
            "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
            "intel.feature.node.kubernetes.io/npu": "true",
        },
        resources={"npu.intel.com/accel": "1"},
    ),
    Node(
        "amd64-nvidia-gpu",
        "amd64",
        {"nvidia.com/gpu.present": "true"},
        taints=(("nvidia.com/gpu", "NoSchedule"),),
        resources={"nvidia.com/gpu": "1"},
    ),
    Node("arm64-pi", "arm64"),
    Node(
        "arm64-jetson",
        "arm64",
        {"nvidia.com/gpu.family": "ampere", "nvidia.com/gpu.present": "true"},
        taints=(("nvidia.com/gpu", "NoSchedule"),),
        resources={"nvidia.com/gpu": "1"},
    ),
    Node(
        "arm64-coral",
        "arm64",
        {"feature.node.kubernetes.io/usb-fe_1a6e_089a.present": "true"},
        resources={"squat.ai/coral": "1"},  # squat/generic-device-plugin's resource
    ),
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """A running control plane; :meth:`start` it, :meth:`stop` it (or use ``with``).

    Args:
        workdir: Directory for its data, certificates, kubeconfigs and logs (created).
    """

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.workdir = Path(workdir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.bin = Path()
        self.kserve_config = Path()
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.timings: dict[str, float] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def start(self) -> None:
        """Build if needed, start every program, install KServe and the nodes; wait until ready.

        Raises:
            RuntimeError: A program failed to start (with the tail of its log).
        """
        started = time.perf_counter()
        built = build.ensure_built()
        self.timings["build_s"] = round(time.perf_counter() - started, 1)
        self.bin, self.kserve_config = built / "bin", built / "kserve"
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.pki = pki.make_pki(self.workdir / "pki")
        for name in ("etcd", "etcd-peer", "apiserver", "scheduler", "kserve-webhook"):
            self.ports[name] = free_port()
        for name in ("kserve-metrics", "kserve-probe", "kwok"):
            self.ports[name] = free_port()
        self._write_kubeconfig(
            self.kubeconfig, {"client-certificate": "admin", "client-key": "admin"}
        )
        t0 = time.perf_counter()
        try:
            self._start_core()
            self._install_kserve()
            self.add_nodes(NODES)
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = round(time.perf_counter() - t0, 1)

    def stop(self) -> None:
        """Stop every program (reverse order of start); keeps the workdir (logs)."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    # -- helpers -------------------------------------------------------------------------------
    def _write_kubeconfig(self, path: Path, user: Mapping[str, str]) -> None:
        auth: dict[str, str] = {}
        for key, value in user.items():
            if key in ("client-certificate", "client-key"):
                suffix = ".crt" if key == "client-certificate" else ".key"
                auth[key] = str(self.pki[value + suffix])
            else:
                auth[key] = value
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kfedge-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki["ca.crt"]),
                    },
                }
            ],
            "users": [{"name": "user", "user": auth}],
            "contexts": [{"name": "test", "context": {"cluster": "kfedge-test", "user": "user"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)

    def kubeconfig_for_token(self, token: str, namespace: str, path: Path) -> Path:
        """Write a kubeconfig that authenticates with a bearer token (a service account's).

        Args:
            token: The bearer token.
            namespace: The context's namespace.
            path: Where to write it.

        Returns:
            ``path``.
        """
        self._write_kubeconfig(path, {"token": token})
        config = yaml.safe_load(path.read_text())
        config["contexts"][0]["context"]["namespace"] = namespace
        path.write_text(yaml.safe_dump(config))
        return path

    def _spawn(self, name: str, args: Iterable[str], env: Mapping[str, str] | None = None) -> None:
        log = open(self.workdir / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - kept by Popen
        self.procs[name] = subprocess.Popen(
            [str(self.bin / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """The end of a program's log."""
        path = self.workdir / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else ""

    def _wait(self, name: str, probe: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited ({proc.returncode}) while starting:\n{self.log_tail(name)}"
                )
            try:
                if probe():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{self.log_tail(name)}")

    def _https_ok(self, url: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki["ca.crt"]))
        ctx.load_cert_chain(str(self.pki["admin.crt"]), str(self.pki["admin.key"]))
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return bool(resp.status == 200)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:  # noqa: A002
        """Run the built kubectl against this control plane as cluster admin.

        Returns:
            Its stdout.

        Raises:
            RuntimeError: It failed and ``check`` is set (with its stderr).
        """
        proc = subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Server-side apply objects as cluster admin."""
        text = yaml.safe_dump_all([dict(o) for o in objects])
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=text)

    # -- the programs --------------------------------------------------------------------------
    def _start_core(self) -> None:
        p, pk = self.ports, self.pki
        data = self.workdir / "etcd"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-cluster=default=http://127.0.0.1:{p['etcd-peer']}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(
            "etcd",
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{p['etcd']}/health", timeout=2),
            60,
        )
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={p['apiserver']}",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pk['serving.crt']}",
                f"--tls-private-key-file={pk['serving.key']}",
                f"--client-ca-file={pk['ca.crt']}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pk['sa.pub']}",
                f"--service-account-signing-key-file={pk['sa.key']}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver", lambda: self._https_ok(f"{self.server}/readyz"), 120)
        kube = ["--kubeconfig", str(self.kubeconfig), "--leader-elect=false"]
        self._spawn(
            "kube-controller-manager",
            [
                *kube,
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                f"--service-account-private-key-file={pk['sa.key']}",
                f"--root-ca-file={pk['ca.crt']}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-route,-cloud-node-lifecycle,-service",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                *kube,
                "--bind-address=127.0.0.1",
                f"--secure-port={p['scheduler']}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--v=1",
            ],
        )
        self._spawn(
            "kwok",
            [
                "--kubeconfig",
                str(self.kubeconfig),
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{p['kwok']}",
                "--cidr=10.244.0.1/16",
                "--node-ip=127.0.0.1",
            ],
        )
        # the default service account appears once the controller manager runs
        self._wait(
            "kube-controller-manager",
            lambda: (
                "default" in self.kubectl("get", "sa", "-n", "default", "-o", "name", check=False)
            ),
            60,
        )

    def _kserve_configmap(self) -> dict[str, Any]:
        cm = yaml.safe_load((self.kserve_config / "inferenceservice.yaml").read_text())
        data = cm["data"]
        deploy = json.loads(data["deploy"])
        deploy["defaultDeploymentMode"] = "Standard"
        data["deploy"] = json.dumps(deploy)
        ingress = json.loads(data["ingress"])
        ingress["disableIngressCreation"] = True
        ingress["disableIstioVirtualHost"] = True
        data["ingress"] = json.dumps(ingress)
        data.pop("_example", None)
        return cm

    def _webhooks(self) -> list[dict[str, Any]]:
        ca = base64.b64encode(self.pki["ca.crt"].read_bytes()).decode()
        port = self.ports["kserve-webhook"]
        out = []
        for doc in yaml.safe_load_all((self.kserve_config / "manifests.yaml").read_text()):
            if not doc:
                continue
            for hook in doc.get("webhooks", []):
                service = hook["clientConfig"].pop("service")
                hook["clientConfig"]["url"] = f"https://127.0.0.1:{port}{service['path']}"
                hook["clientConfig"]["caBundle"] = ca
            out.append(doc)
        return out

    def _install_kserve(self) -> None:
        crds = sorted(self.kserve_config.glob("serving.kserve.io_*.yaml"))
        self.kubectl("apply", "--server-side", *[arg for c in crds for arg in ("-f", str(c))])
        for crd in crds:
            name = yaml.safe_load(crd.read_text())["metadata"]["name"]
            self.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
        self.apply(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KSERVE_NAMESPACE}},
                self._kserve_configmap(),
                {
                    "apiVersion": "node.k8s.io/v1",
                    "kind": "RuntimeClass",
                    "metadata": {"name": "nvidia"},
                    "handler": "nvidia",
                },
            ]
        )
        tmp = self.workdir / "kserve-tmp"
        certs = tmp / "k8s-webhook-server" / "serving-certs"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "tls.crt").write_bytes(self.pki["serving.crt"].read_bytes())
        (certs / "tls.key").write_bytes(self.pki["serving.key"].read_bytes())
        p = self.ports
        self._spawn(
            "kserve-manager",
            [
                f"--metrics-addr=127.0.0.1:{p['kserve-metrics']}",
                f"--health-probe-addr=127.0.0.1:{p['kserve-probe']}",
                f"--webhook-port={p['kserve-webhook']}",
            ],
            # controller-runtime's default webhook cert dir is $TMPDIR/k8s-webhook-server/...
            env={
                "KUBECONFIG": str(self.kubeconfig),
                "POD_NAMESPACE": KSERVE_NAMESPACE,
                "TMPDIR": str(tmp),
            },
        )
        self._wait(
            "kserve-manager",
            lambda: (
                urllib.request.urlopen(
                    f"http://127.0.0.1:{p['kserve-probe']}/readyz", timeout=2
                ).status
                == 200
            ),
            120,
        )
        self.apply(self._webhooks())

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        """Create fake nodes (kwok makes them Ready) and wait until each is Ready."""
        objs = []
        for node in nodes:
            capacity = {"cpu": "4", "memory": "8Gi", "pods": "110", **node.resources}
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": node.name,
                        "annotations": {KWOK_ANNOTATION: "fake"},
                        "labels": {
                            "kubernetes.io/arch": node.arch,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/hostname": node.name,
                            "type": "kwok",
                            **node.labels,
                        },
                    },
                    "spec": {
                        "taints": [
                            {"key": key, "value": "present", "effect": effect}
                            for key, effect in node.taints
                        ]
                    },
                    "status": {"capacity": capacity, "allocatable": capacity},
                }
            )
        self.apply(objs)
        for obj in objs:
            # a created Node's status may be reset; the extended resources go in by the
            # status subresource, as a device plugin's kubelet would report them
            self.kubectl(
                "patch",
                f"node/{obj['metadata']['name']}",
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": obj["status"]}),
            )
            self.kubectl(
                "wait", "--for=condition=Ready", f"node/{obj['metadata']['name']}", "--timeout=60s"
            )
