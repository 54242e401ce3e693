"""Create or update an InferenceService through the Kubernetes API and wait until it serves it.

The API is reached through ``KServeClient``'s custom objects API (in-cluster config or a
kubeconfig); the Kubernetes / KServe clients are imported lazily. An update is an RFC 7386
merge patch, so keys the new object no longer has are removed. Transient API faults (409
conflict, 429, 5xx, an unreachable API server) are retried with backoff (:mod:`kfedge.retry`);
any other refusal (403, 404, 422 ...) fails at once with what to do.

**Ready for the current spec.** KServe's ``status.observedGeneration`` is not the
InferenceService's: KServe copies it from the predictor's Deployment (RawDeployment) or Knative
Service (Serverless) (kserve/kserve ``pkg/apis/serving/v1beta1/inference_service_status.go``:
``PropagateRawStatus`` sets ``ss.ObservedGeneration = deploymentList[0].Status.
ObservedGeneration``, ``PropagateStatus`` ``serviceStatus.ObservedGeneration``), so comparing
it with ``metadata.generation`` means nothing. And right after an update, the ``Ready``
condition still describes the previous spec until the workload's controller has seen the new
one. So after an update that changed the spec (the generation moved), the object counts as
Ready for it only when ``Ready`` is True **and** the workload moved on since: the copied
``status.observedGeneration`` differs from before the update (the Deployment / Knative Service
controller observed a new spec, and the conditions KServe copied with it describe it), or the
``Ready`` condition's ``lastTransitionTime`` changed (it went through not-Ready); in Serverless
mode, also ``status.components.predictor.latestReadyRevision`` must equal
``latestCreatedRevision``. A newly created object, or an update that changed no spec, is Ready
with ``Ready`` True.

**Raw deployment mode: the rollout.** There KServe's ``Ready`` is the predictor Deployment's
``Available``, which stays True while a rollout runs (the old pod still serves), and the copied
``observedGeneration`` moves as soon as the rollout starts. So in raw mode deploy also reads the
predictor Deployment (``<name>-predictor``) and waits until its rollout is complete
(:func:`rollout_done`): the RBAC needs ``get`` on ``apps/deployments`` beside the
InferenceService verbs (Kubeflow's ``kubeflow-edit`` has it through ``kubeflow-view``).

**Namespace.** :func:`default_namespace` is the namespace a deployment goes to when none is
given: the pod's own (a Kubeflow pipeline step runs in the user's profile namespace), else the
kubeconfig context's, else ``default``, as ``kubectl`` does.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kfedge.errors import InvalidInputError
from kfedge.isvc import (
    API_VERSION,
    GROUP,
    MANAGED_BY_LABEL,
    PLURAL,
    DeployError,
    TransientDeployError,
)
from kfedge.retry import ATTEMPTS, retry

log = logging.getLogger(__name__)

__all__ = ["cluster_configured", "default_namespace", "deploy", "ready_for_current_spec"]

T = TypeVar("T")

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_SA_TOKEN = _SA_DIR / "token"
#: The pod's namespace, mounted with its service-account token.
SA_NAMESPACE = _SA_DIR / "namespace"
#: kubectl's namespace when the kubeconfig context names none.
FALLBACK_NAMESPACE = "default"
RBAC_HINT = (
    "the run's service account needs get / create / patch on inferenceservices and get on "
    "deployments in namespace {ns}: on Kubeflow, KServe installed with its Kubeflow overlay "
    "gives them to kubeflow-edit (else add manifests/components/profile-rbac to "
    "manifests/overlays/kubeflow-profile); with standalone KFP, kubectl apply -k "
    "manifests/overlays/standalone"
)


def cluster_configured() -> bool:
    """Whether a Kubernetes API is configured: in-cluster service account or ``KUBECONFIG``."""
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and _SA_TOKEN.is_file()
    kubeconfig = os.environ.get("KUBECONFIG", "")
    return in_cluster or any(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p)


def default_namespace(kubeconfig: str | os.PathLike[str] | None = None) -> str:
    """The namespace to deploy into when none is given.

    In a pod (a pipeline step), the pod's own namespace: on Kubeflow, the profile namespace
    the run belongs to, where its ``default-editor`` account may create InferenceServices.
    Outside a pod, the namespace of the kubeconfig's current context, else ``default``.

    Args:
        kubeconfig: Kubeconfig path (default: ``KUBECONFIG`` / ``~/.kube/config``).

    Returns:
        The namespace name.
    """
    try:
        ns = SA_NAMESPACE.read_text().strip()
    except OSError:
        ns = ""
    if ns:
        return ns
    try:
        from kubernetes import config

        _contexts, active = config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
        ns = str(((active or {}).get("context") or {}).get("namespace") or "")
    except Exception:  # no kubeconfig, or not the kubernetes client: kubectl's default
        ns = ""
    return ns or FALLBACK_NAMESPACE


def _kserve_client(kube: Any) -> Any:
    if kube is not None and not isinstance(kube, str | os.PathLike):
        return kube
    from kserve import KServeClient

    try:
        if kube is not None:
            return KServeClient(config_file=str(kube))
        return KServeClient()
    except Exception as exc:  # kubernetes.config raises ConfigException and friends
        raise DeployError(
            f"no Kubernetes API configured ({type(exc).__name__}: {exc}); run in a cluster, "
            "set KUBECONFIG, or deploy locally (mode 'local')"
        ) from exc


def _is_transient(exc: BaseException) -> bool:
    """409 conflict, 429, 5xx or no HTTP answer at all: the API server may do better later."""
    from kubernetes.client.rest import ApiException

    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        return status in (0, 409, 429) or status >= 500
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def _api_error(exc: Any, what: str, namespace: str) -> DeployError:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or type(exc).__name__
    body = getattr(exc, "body", "") or ""
    try:
        message = json.loads(body).get("message", "") if body else ""
    except (ValueError, AttributeError):
        message = str(body)[:300]
    hint = ""
    if status in (401, 403):
        hint = "; " + RBAC_HINT.format(ns=namespace)
    elif status == 404:
        hint = "; is KServe installed (InferenceService CRD) and does the namespace exist?"
    return DeployError(f"{what} failed: HTTP {status} {reason}: {message}{hint}")


def _call(what: str, namespace: str, fn: Callable[[], T]) -> T:
    """``fn`` (Kubernetes API calls), transient faults retried, failures as DeployErrors."""
    from kubernetes.client.rest import ApiException

    try:
        return retry(fn, transient=_is_transient, what=what)
    except ApiException as exc:
        err = _api_error(exc, what, namespace)
        if _is_transient(exc):
            err = TransientDeployError(f"{err} (transient: gave up after {ATTEMPTS} attempts)")
        raise err from None
    except DeployError:
        raise
    except Exception as exc:
        if not _is_transient(exc):
            raise
        raise TransientDeployError(
            f"{what} failed: the Kubernetes API is unreachable: {str(exc).splitlines()[0][:200]} "
            f"(transient: gave up after {ATTEMPTS} attempts)"
        ) from None


def _merge_patch(old: Any, new: Any) -> Any:
    """RFC 7386 merge patch turning ``old`` into ``new`` (removed keys become null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: _merge_patch(old.get(k), v) for k, v in new.items()}
    patch.update({k: None for k in old if k not in new})
    return patch


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def _ready_condition(obj: dict[str, Any]) -> tuple[bool, str]:
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    waiting = [
        f"{c.get('type')}={c.get('status')}"
        + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "")
        for c in conditions
        if str(c.get("status")).lower() != "true"
    ]
    failure = (status.get("modelStatus") or {}).get("lastFailureInfo") or {}
    if failure.get("message"):
        waiting.append(f"last failure: {failure.get('reason', '')} {failure['message']}".strip())
    is_ready = str(_condition(obj, "Ready").get("status")).lower() == "true"
    return is_ready, "; ".join(waiting) or "no status yet"


def pods_refused(obj: dict[str, Any]) -> str:
    """Why the predictor's pods cannot be created, with what to do; "" when they can.

    KServe copies the predictor ReplicaSet's ``ReplicaFailure`` into ``PredictorReady``
    (reason ``FailedCreate``, with the API server's refusal as message: seen on the real
    control plane of ``tests/test_cluster.py``, KServe 0.20). Two refusals repeat until
    someone changes the namespace, so deploy stops at once for them instead of waiting for
    its timeout: Pod Security and a missing S3 Secret. Others (a quota, a webhook briefly
    down) may pass and are reported at the timeout.
    """
    cond = _condition(obj, "PredictorReady")
    if str(cond.get("status")).lower() != "false" or cond.get("reason") != "FailedCreate":
        return ""
    message = str(cond.get("message") or "")
    hint = ""
    if "PodSecurity" in message:
        hint = (
            " (the namespace's Pod Security level, label pod-security.kubernetes.io/enforce, "
            "forbids what the target's device needs: expose the device with a device plugin "
            "and name its resource in the target's devices.resources, or have an admin allow "
            "the level the target needs)"
        )
    elif "secrets" in message and "not found" in message:
        hint = (
            " (KServe's storage initializer needs the S3 Secret the InferenceService names: "
            "kubectl apply -k one of manifests/overlays)"
        )
    return message + hint if hint else ""


def _snapshot(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """What :func:`ready_for_current_spec` compares against: the object before our write."""
    if obj is None:
        return None
    status = obj.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    return {
        "generation": (obj.get("metadata") or {}).get("generation"),
        "observed": status.get("observedGeneration"),
        "ready_since": _condition(obj, "Ready").get("lastTransitionTime"),
        "revision": predictor.get("latestCreatedRevision"),
    }


def _knative(obj: dict[str, Any]) -> bool:
    mode = ((obj.get("metadata") or {}).get("annotations") or {}).get(
        "serving.kserve.io/deploymentMode"
    ) or (obj.get("status") or {}).get("deploymentMode", "")
    return str(mode) in ("Serverless", "Knative")


def ready_for_current_spec(obj: dict[str, Any], before: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether KServe serves the object's current spec (see the module docstring).

    Args:
        obj: The InferenceService as read now.
        before: :func:`_snapshot` of it before our create / update (None: we created it).

    Returns:
        ``(ready, what is still awaited)``.
    """
    ready, detail = _ready_condition(obj)
    status = obj.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    if _knative(obj) and predictor.get("latestCreatedRevision") != predictor.get(
        "latestReadyRevision"
    ):
        return False, (
            f"revision {predictor.get('latestCreatedRevision')} not ready yet "
            f"(serving {predictor.get('latestReadyRevision')}); {detail}"
        )
    if not ready:
        return False, detail
    if before is None or (obj.get("metadata") or {}).get("generation") == before["generation"]:
        return True, ""
    moved = (
        status.get("observedGeneration") != before["observed"]
        or _condition(obj, "Ready").get("lastTransitionTime") != before["ready_since"]
        or (
            bool(before["revision"])
            and predictor.get("latestCreatedRevision") != before["revision"]
        )
    )
    if not moved:
        return False, (
            "Ready still describes the previous spec: KServe has not rolled out the update yet "
            "(a change that leaves the predictor's pods as they are, such as replicas only, "
            "never moves it)"
        )
    return True, ""


def predictor_deployment(name: str) -> str:
    """The predictor Deployment KServe makes for an InferenceService in raw deployment mode.

    kserve/kserve ``pkg/constants/constants.go``: ``PredictorServiceName(name)`` is
    ``name + "-predictor"`` (v0.15 and later; the raw Deployment is named after it).
    """
    return f"{name}-predictor"


def rollout_done(deployment: dict[str, Any]) -> tuple[bool, str]:
    """Whether a Deployment's rollout is complete, as ``kubectl rollout status`` decides.

    KServe's ``Ready`` stays True during a raw-mode rollout (the old pod is still Available),
    so only the Deployment tells that every pod runs the new spec: its controller observed
    the newest generation, every replica is updated and available, and no old one is left.

    Returns:
        ``(done, what is still awaited)``.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False, "the predictor's Deployment controller has not seen the new spec yet"
    if updated < want:
        return False, f"{updated} of {want} predictor pods run the new spec"
    if total > updated:
        return False, f"{total - updated} old predictor pod(s) still running"
    if available < updated:
        return False, f"{available} of {updated} new predictor pods available"
    return True, ""


def _read_deployment(apps: Any, name: str, namespace: str) -> dict[str, Any] | None:
    """The Deployment as a dict, None when there is none (yet)."""
    from kubernetes.client.rest import ApiException

    try:
        found = apps.read_namespaced_deployment(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(apps.api_client.sanitize_for_serialization(found))


def _apply(api: Any, isvc: dict[str, Any], version: str) -> dict[str, Any] | None:
    """Create the object, or merge-patch it into the new one; the object as it was before."""
    from kubernetes.client.rest import ApiException

    meta = isvc["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    try:
        current = api.get_namespaced_custom_object(GROUP, version, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        current = None
    if current is not None:
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != "kfedge":
            raise DeployError(
                f"InferenceService {namespace}/{name} exists and is not kfedge's (no label "
                f"{MANAGED_BY_LABEL}=kfedge): deploy does not replace it; give this deployment "
                "another name"
            )
    if current is None:
        log.info("creating InferenceService %s/%s", namespace, name)
        # Strict: a misspelled or unknown field is refused, not silently pruned
        api.create_namespaced_custom_object(
            GROUP, version, namespace, PLURAL, isvc, field_validation="Strict"
        )
    else:
        log.info("updating InferenceService %s/%s", namespace, name)
        body = {
            "metadata": {
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
            },
            "spec": _merge_patch(current.get("spec") or {}, isvc.get("spec") or {}),
        }
        api.patch_namespaced_custom_object(
            GROUP, version, namespace, PLURAL, name, body, field_validation="Strict"
        )
    return current


def deploy(
    isvc: dict[str, Any],
    wait_timeout: float = 300,
    kube: Any = None,
    poll_interval: float = 5.0,
) -> str:
    """Create or update an InferenceService, wait until it serves this spec, return its URL.

    Args:
        isvc: The InferenceService (from :func:`build_inference_service`).
        wait_timeout: Seconds to wait until it is Ready for this spec.
        kube: A ``KServeClient``, a kubeconfig path, or None (in-cluster config, else the
            default kubeconfig).
        poll_interval: Seconds between status reads.

    Returns:
        The cluster-internal URL (``status.address.url``), else ``status.url``.

    Raises:
        DeployError: The API refused the object, or it was not Ready in time (the message
            carries the conditions that were not True).
        TransientDeployError: The API kept failing transiently (conflicts, 429, 5xx,
            unreachable) through every retry.
    """
    meta = isvc.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not name or not namespace or isvc.get("kind") != "InferenceService":
        raise InvalidInputError(
            "expected an InferenceService dict with metadata.name and metadata.namespace "
            f"(from build_inference_service); got kind={isvc.get('kind')!r}, name={name!r}, "
            f"namespace={namespace!r}"
        )
    version = isvc.get("apiVersion", API_VERSION).split("/")[-1]
    api = _kserve_client(kube).api_instance
    from kubernetes.client import AppsV1Api

    apps = AppsV1Api(api.api_client)
    where = f"InferenceService {namespace}/{name}"
    before = _snapshot(_call(f"applying {where}", namespace, lambda: _apply(api, isvc, version)))
    deadline = time.monotonic() + wait_timeout
    while True:
        obj = _call(
            f"reading {where}",
            namespace,
            lambda: api.get_namespaced_custom_object(GROUP, version, namespace, PLURAL, name),
        )
        ready, detail = ready_for_current_spec(obj, before)
        if ready and not _knative(obj):
            deployment = _call(
                f"reading the predictor Deployment of {where}",
                namespace,
                lambda: _read_deployment(apps, predictor_deployment(name), namespace),
            )
            if deployment is None:
                ready, detail = False, f"no Deployment {predictor_deployment(name)} yet"
            else:
                ready, detail = rollout_done(deployment)
        if ready:
            status = obj.get("status") or {}
            url = (status.get("address") or {}).get("url") or status.get("url")
            if not url:
                raise DeployError(f"{where} is Ready but has no URL")
            log.info("%s is ready at %s", where, url)
            return str(url)
        refused = pods_refused(obj)
        if refused:
            raise DeployError(f"{where}: Kubernetes refuses its predictor pods: {refused}")
        if time.monotonic() >= deadline:
            generation = (obj.get("metadata") or {}).get("generation")
            raise DeployError(
                f"{where} (generation {generation}) was not Ready after {wait_timeout:g} s: "
                f"{detail} (kubectl describe inferenceservice -n {namespace} {name})"
            )
        time.sleep(poll_interval)
