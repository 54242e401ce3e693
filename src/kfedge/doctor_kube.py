"""The Kubernetes API checks of ``kfedge doctor`` (read-only GETs).

KServe's API and the kfedge runtime, nodes for the target (labels, taints, allocatable
accelerator / device resources), the target's RuntimeClass, and the S3 Secret / ServiceAccount
the storage initializer uses, checked against the keys and annotations KServe reads
(:func:`kfedge.support.kserve_defaults`). Each returns :class:`kfedge.doctor.Finding` lines.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kfedge.doctor import Finding
from kfedge.errors import DependencyError, KfedgeError
from kfedge.support import kserve_defaults

OVERLAY_FIX = (
    "kubectl apply -k manifests/overlays/kubeflow-profile (namespace: {ns}) on Kubeflow, or "
    "manifests/overlays/standalone for standalone KFP"
)


class ApiError(Exception):
    """A Kubernetes API GET failed: ``status`` (None: unreachable) and the server's message."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class Kube:
    """GET on the Kubernetes API with the kubernetes client's configuration and auth."""

    def __init__(self, kubeconfig: str | os.PathLike[str] | None, timeout: float) -> None:
        try:
            from kubernetes import client, config
        except ImportError as exc:
            raise DependencyError(
                "kfedge doctor needs the kubernetes client: pip install 'kfedge[pipelines]'"
            ) from exc
        cfg = client.Configuration()
        try:
            if kubeconfig is not None:
                config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=cfg)
            else:
                config.load_kube_config(client_configuration=cfg)
        except Exception as exc:  # ConfigException, missing files: one line
            raise KfedgeError(f"no Kubernetes API configured: {exc}") from None
        cfg.retries = 0
        self.host = cfg.host
        self._api = client.ApiClient(cfg)
        self._timeout = timeout

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        """GET ``path`` (with query parameters) and return the decoded JSON.

        Throttling (429), 5xx and an unreachable API are retried with backoff
        (:mod:`kfedge.retry`, 3 attempts); other answers are final.

        Raises:
            ApiError: An HTTP error (with its status and message) or an unreachable API.
        """
        from kfedge.retry import retry

        def transient(exc: BaseException) -> bool:
            status = getattr(exc, "status", 0)
            return isinstance(exc, ApiError) and (status is None or status == 429 or status >= 500)

        return retry(
            lambda: self._get(path, query), attempts=3, transient=transient, what=f"GET {path}"
        )

    def _get(self, path: str, query: dict[str, str] | None) -> Any:
        from kubernetes.client.rest import ApiException

        try:
            data, _status, _headers = self._api.call_api(
                path,
                "GET",
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=False,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            message = exc.reason or ""
            try:
                message = json.loads(exc.body or "{}").get("message") or message
            except (ValueError, AttributeError):
                pass
            raise ApiError(exc.status, str(message)[:300]) from None
        except Exception as exc:  # urllib3 connection errors
            raise ApiError(None, f"cannot reach the Kubernetes API at {self.host}: {exc}") from None
        return data


# ---------------------------------------------------------------------------------- KServe
def check_kserve(kube: Kube, target: Any, runtime: str) -> list[Finding]:
    """KServe's API (discovery) and the ClusterServingRuntime serving the target's formats."""
    out: list[Finding] = []
    needed = {"v1beta1": "inferenceservices", "v1alpha1": "clusterservingruntimes"}
    for version, resource in needed.items():
        try:
            found = {
                r.get("name") for r in kube.get(f"/apis/serving.kserve.io/{version}")["resources"]
            }
        except ApiError as exc:
            if exc.status == 404:
                return [
                    Finding(
                        "kserve",
                        "fail",
                        f"KServe is not installed (no API serving.kserve.io/{version})",
                        "install KServe 0.15 - 0.21 (Kubeflow's manifests include it)",
                    )
                ]
            return [Finding("kserve", "fail", str(exc), "check the kubeconfig / API access")]
        if resource not in found:
            return [
                Finding(
                    "kserve",
                    "fail",
                    f"serving.kserve.io/{version} has no {resource}",
                    "install KServe 0.15 - 0.21 with its CRDs",
                )
            ]
    out.append(
        Finding("kserve", "ok", "KServe API present (InferenceService, ClusterServingRuntime)")
    )
    from kfedge.isvc import resolve_runtime

    wanted: dict[str, list[str]] = {}  # the runtime deploy names for each of the target's formats
    for fmt in target.formats:
        wanted.setdefault(resolve_runtime(runtime, fmt, target.runtime_image), []).append(fmt)
    for name, formats in wanted.items():
        out += _check_runtime(kube, target, name, formats)
    return out


def _check_runtime(kube: Kube, target: Any, runtime: str, needed: list[str]) -> list[Finding]:
    """One ClusterServingRuntime: present, enabled, listing the formats deploy gives it."""
    out: list[Finding] = []
    try:
        rt = kube.get(f"/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/{runtime}")
    except ApiError as exc:
        if exc.status == 404:
            return [
                Finding(
                    "runtime",
                    "fail",
                    f"ClusterServingRuntime {runtime} is not installed",
                    "a cluster admin runs: kubectl apply -k manifests/base",
                ),
            ]
        if exc.status == 403:
            return [
                Finding(
                    "runtime",
                    "warn",
                    f"cannot read ClusterServingRuntime {runtime} (not allowed: {exc})",
                    "ask a cluster admin whether `kubectl apply -k manifests/base` was applied",
                ),
            ]
        return [Finding("runtime", "fail", str(exc), "check API access")]
    spec = rt.get("spec") or {}
    formats = {str(f.get("name", "")).lower() for f in spec.get("supportedModelFormats") or []}
    missing = [f for f in needed if f not in formats]
    if spec.get("disabled"):
        out.append(Finding("runtime", "fail", f"{runtime} is disabled", "set spec.disabled: false"))
    elif missing:
        out.append(
            Finding(
                "runtime",
                "fail",
                f"{runtime} does not list format(s) {missing} that target {target.name} uses",
                "re-apply manifests/base from this kfedge version",
            )
        )
    else:
        images = [c.get("image") for c in spec.get("containers") or []]
        out.append(
            Finding("runtime", "ok", f"{runtime} serves {sorted(formats)} ({', '.join(images)})")
        )
    return out


# ----------------------------------------------------------------------------------- nodes
def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _quantity(text: Any) -> float:
    text = str(text or "0")
    try:
        return float(text)
    except ValueError:
        return 0.0


def check_nodes(kube: Kube, target: Any) -> list[Finding]:
    """Nodes with the target's labels, schedulable for its tolerations, with its resources."""
    selector = target.k8s_node_selector()
    label_sel = ",".join(f"{k}={v}" for k, v in selector.items())
    try:
        nodes = kube.get("/api/v1/nodes", {"labelSelector": label_sel}).get("items") or []
    except ApiError as exc:
        if exc.status == 403:
            return [
                Finding(
                    "nodes",
                    "warn",
                    f"cannot list nodes (not allowed: {exc}); placement not checked",
                    f"ask a cluster admin: kubectl get nodes -l {label_sel}",
                )
            ]
        return [Finding("nodes", "fail", str(exc), "check API access")]
    if not nodes:
        labels = " ".join(f"{k}={v}" for k, v in selector.items())
        return [
            Finding(
                "nodes",
                "fail",
                f"no node has the labels of target {target.name} ({label_sel}); evaluate and "
                "the InferenceService would stay Pending",
                f"label the edge node: kubectl label node NODE {labels} (or edit the target)",
            )
        ]
    tolerations = target.k8s_tolerations()
    usable, tainted = [], []
    for node in nodes:
        blocking = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, t)
        ]
        name = node["metadata"]["name"]
        if blocking or (node.get("spec") or {}).get("unschedulable"):
            why = ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in blocking) or "cordoned"
            tainted.append(f"{name} ({why})")
        else:
            usable.append(node)
    out: list[Finding] = []
    if not usable:
        return [
            Finding(
                "nodes",
                "fail",
                f"nodes match target {target.name} but none is schedulable: {', '.join(tainted)}",
                "add the toleration to the target profile, or remove the taint / uncordon",
            )
        ]
    names = [n["metadata"]["name"] for n in usable]
    out.append(
        Finding("nodes", "ok", f"{len(usable)} node(s) for {target.name}: {', '.join(names)}")
    )
    wanted = dict(target.devices.resources)
    if target.accelerator is not None:
        wanted[target.accelerator.resource] = target.accelerator.count
    for resource, count in wanted.items():
        have = [
            n["metadata"]["name"]
            for n in usable
            if _quantity(((n.get("status") or {}).get("allocatable") or {}).get(resource)) >= count
        ]
        if have:
            out.append(
                Finding("nodes", "ok", f"{resource} x{count} allocatable on {', '.join(have)}")
            )
        else:
            out.append(
                Finding(
                    "nodes",
                    "fail",
                    f"no matching node has {resource} x{count} allocatable",
                    f"install / fix the device plugin that registers {resource} on "
                    + ", ".join(names),
                )
            )
    return out


def check_runtime_class(kube: Kube, target: Any) -> list[Finding]:
    """The RuntimeClass the target names (``devices.runtime_class``) exists."""
    name = target.devices.runtime_class
    if not name:
        return []
    try:
        kube.get(f"/apis/node.k8s.io/v1/runtimeclasses/{name}")
    except ApiError as exc:
        if exc.status == 404:
            return [
                Finding(
                    "runtime-class",
                    "fail",
                    f"RuntimeClass {name} (target {target.name}) does not exist; pods naming it "
                    "are refused",
                    "install the container runtime that registers it (k3s on JetPack does), or "
                    "set devices.runtime_class: null in a copy of the target",
                )
            ]
        return [Finding("runtime-class", "warn", f"cannot read RuntimeClass {name}: {exc}", "")]
    return [Finding("runtime-class", "ok", f"RuntimeClass {name} exists")]


# -------------------------------------------------------------------------------------- S3
def check_s3(kube: Kube, namespace: str, secret: str, service_account: str) -> list[Finding]:
    """The S3 Secret (keys + annotations KServe reads; values never read out) and its SA."""
    keys = kserve_defaults()["s3_credentials"]
    fix = OVERLAY_FIX.format(ns=namespace)
    out: list[Finding] = []
    try:
        obj = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{secret}")
    except ApiError as exc:
        if exc.status == 404:
            return [
                Finding("s3-secret", "fail", f"Secret {namespace}/{secret} does not exist", fix)
            ]
        return [Finding("s3-secret", "warn", f"cannot read Secret {namespace}/{secret}: {exc}", "")]
    data_keys = set((obj.get("data") or {}) | (obj.get("stringData") or {}))
    need = [keys["access_key_id_key"], keys["secret_access_key_key"]]
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    lacking = [k for k in need if k not in data_keys]
    if lacking:
        out.append(
            Finding(
                "s3-secret",
                "fail",
                f"Secret {namespace}/{secret} lacks key(s) {lacking}: KServe does not take it "
                "as S3 credentials",
                f"{fix} (keys {', '.join(need)})",
            )
        )
    endpoint = ann.get("serving.kserve.io/s3-endpoint") or ""
    https = ann.get("serving.kserve.io/s3-usehttps", "")
    if not endpoint and "S3_ENDPOINT" not in data_keys:
        out.append(
            Finding(
                "s3-secret",
                "fail",
                f"Secret {namespace}/{secret} has no serving.kserve.io/s3-endpoint annotation: "
                "KServe's storage initializer would fetch from AWS S3",
                f"{fix}; or annotate it with KFP's store, e.g. seaweedfs.kubeflow:8333",
            )
        )
    elif endpoint and not endpoint.startswith(("http://", "https://")) and https != "0":
        in_cluster = ".kubeflow" in endpoint or endpoint.split(":")[0].endswith(".svc")
        out.append(
            Finding(
                "s3-secret",
                "fail" if in_cluster else "warn",
                f'KServe will use https to {endpoint} (no serving.kserve.io/s3-usehttps: "0")'
                + ("; KFP's object store speaks plain HTTP" if in_cluster else ""),
                f'annotate Secret {namespace}/{secret} with serving.kserve.io/s3-usehttps: "0" '
                "if the endpoint is plain HTTP",
            )
        )
    elif not lacking:
        out.append(
            Finding(
                "s3-secret", "ok", f"Secret {namespace}/{secret}: credentials, endpoint {endpoint}"
            )
        )
    try:
        sa = kube.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}")
    except ApiError as exc:
        if exc.status == 404:
            out.append(
                Finding(
                    "s3-serviceaccount",
                    "fail",
                    f"ServiceAccount {namespace}/{service_account} (which InferenceServices name) "
                    "does not exist",
                    fix,
                )
            )
        else:
            out.append(Finding("s3-serviceaccount", "warn", f"cannot read it: {exc}", ""))
        return out
    listed = [s.get("name") for s in sa.get("secrets") or []]
    if secret not in listed:
        # deploy names the Secret by annotation (serving.kserve.io/storageSecretName), which
        # KServe reads whatever the account lists (seen on the real control plane,
        # tests/test_cluster.py): not listing it is fine
        out.append(
            Finding(
                "s3-serviceaccount",
                "ok",
                f"ServiceAccount {namespace}/{service_account} exists (it lists no {secret}; "
                "deploy names the Secret by annotation, which KServe reads first)",
            )
        )
    else:
        out.append(
            Finding("s3-serviceaccount", "ok", f"ServiceAccount {service_account} lists {secret}")
        )
    return out


# ------------------------------------------------------------------------------- namespace
#: Pod Security levels that refuse a privileged container or a hostPath volume
#: (k8s.io/pod-security-admission policy: both are "baseline" checks).
_NO_HOST_DEVICES = ("baseline", "restricted")


def check_namespace(kube: Kube, namespace: str, target: Any) -> list[Finding]:
    """The namespace's labels against what KServe and the target's predictor need.

    * ``control-plane``: KServe's pod webhook skips such namespaces (its
      ``namespaceSelector``: ``control-plane DoesNotExist``, kserve
      ``config/webhook/manifests.yaml``), so no storage initializer is added and the
      predictor starts without its model; Kubeflow labels its own ``kubeflow`` namespace so.
    * ``pod-security.kubernetes.io/enforce``: ``baseline`` (Kubeflow 1.11 profiles) and
      ``restricted`` refuse a privileged container and hostPath volumes, which a target that
      reaches its device through the host's device nodes needs.
    * ``istio-injection: enabled``: the predictor opts out of the sidecar (deploy sets
      ``sidecar.istio.io/inject: "false"``), reported so nobody is surprised.
    """
    try:
        obj = kube.get(f"/api/v1/namespaces/{namespace}")
    except ApiError as exc:
        if exc.status == 404:
            return [
                Finding(
                    "namespace",
                    "fail",
                    f"namespace {namespace} does not exist",
                    "pass --namespace with the namespace runs deploy into (on Kubeflow: your "
                    "profile's)",
                )
            ]
        return [
            Finding(
                "namespace",
                "warn",
                f"cannot read namespace {namespace} ({exc}); its Pod Security level and labels "
                "are not checked",
                "run doctor with an account that may get namespaces",
            )
        ]
    labels = (obj.get("metadata") or {}).get("labels") or {}
    out: list[Finding] = []
    if "control-plane" in labels:
        out.append(
            Finding(
                "namespace",
                "fail",
                f"namespace {namespace} is labelled control-plane: KServe's pod webhook skips "
                "it, so predictors there get no storage initializer and start without a model",
                "deploy into a namespace without that label (on Kubeflow: your profile's)",
            )
        )
    level = labels.get("pod-security.kubernetes.io/enforce", "")
    devices = target.devices
    needs = [
        what
        for what, used in (
            ("a privileged container", devices.privileged),
            ("hostPath volumes", devices.host_paths),
        )
        if used
    ]
    if needs and level in _NO_HOST_DEVICES:
        out.append(
            Finding(
                "pod-security",
                "fail",
                f"namespace {namespace} enforces Pod Security {level!r}, which refuses "
                f"{' and '.join(needs)}: target {target.name}'s predictor is never created",
                "expose the device with a device plugin and name its resource in the target's "
                "devices.resources (see the profile's comments), or have an admin label the "
                "namespace pod-security.kubernetes.io/enforce=privileged",
            )
        )
    elif needs:
        out.append(
            Finding(
                "pod-security",
                "ok",
                f"namespace {namespace} allows {' and '.join(needs)} "
                f"(Pod Security enforce={level or 'unset'})",
            )
        )
    if labels.get("istio-injection") == "enabled":
        out.append(
            Finding(
                "istio",
                "ok",
                f"namespace {namespace} injects Istio sidecars; kfedge's predictors opt out "
                '(sidecar.istio.io/inject: "false"), so KFP steps without a sidecar reach them',
            )
        )
    if not out:
        out.append(Finding("namespace", "ok", f"namespace {namespace}: nothing in the way"))
    return out
