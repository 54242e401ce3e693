"""Create or update an InferenceService through the Kubernetes API and wait until it is Ready.

The API is reached through ``KServeClient``'s custom objects API (in-cluster config or a
kubeconfig); the Kubernetes / KServe clients are imported lazily. An update is an RFC 7386
merge patch, so keys the new object no longer has are removed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from kfedge.errors import InvalidInputError
from kfedge.isvc import API_VERSION, GROUP, PLURAL, DeployError

log = logging.getLogger(__name__)

__all__ = ["cluster_configured", "deploy"]

_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def cluster_configured() -> bool:
    """Whether a Kubernetes API is configured: in-cluster service account or ``KUBECONFIG``."""
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and _SA_TOKEN.is_file()
    kubeconfig = os.environ.get("KUBECONFIG", "")
    return in_cluster or any(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p)


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
        hint = (
            f"; the pipeline's service account needs the kfedge-deployer Role in namespace "
            f"{namespace} (kubectl apply -k manifests/base)"
        )
    elif status == 404:
        hint = "; is KServe installed (InferenceService CRD) and does the namespace exist?"
    return DeployError(f"{what} failed: HTTP {status} {reason}: {message}{hint}")


def _merge_patch(old: Any, new: Any) -> Any:
    """RFC 7386 merge patch turning ``old`` into ``new`` (removed keys become null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: _merge_patch(old.get(k), v) for k, v in new.items()}
    patch.update({k: None for k in old if k not in new})
    return patch


def _ready_condition(obj: dict[str, Any]) -> tuple[bool, str]:
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    waiting = [
        f"{c.get('type')}={c.get('status')}"
        + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "")
        for c in conditions
        if str(c.get("status")).lower() != "true"
    ]
    is_ready = ready is not None and str(ready.get("status")).lower() == "true"
    return is_ready, "; ".join(waiting) or "no status yet"


def deploy(
    isvc: dict[str, Any],
    wait_timeout: float = 300,
    kube: Any = None,
    poll_interval: float = 5.0,
) -> str:
    """Create or update an InferenceService, wait until it is Ready, return its URL.

    Args:
        isvc: The InferenceService (from :func:`build_inference_service`).
        wait_timeout: Seconds to wait for the Ready condition of the new generation.
        kube: A ``KServeClient``, a kubeconfig path, or None (in-cluster config, else the
            default kubeconfig).
        poll_interval: Seconds between status reads.

    Returns:
        The cluster-internal URL (``status.address.url``), else ``status.url``.

    Raises:
        DeployError: The API refused the object, or it was not Ready in time (the message
            carries the conditions that were not True).
    """
    meta = isvc.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not name or not namespace or isvc.get("kind") != "InferenceService":
        raise InvalidInputError(
            "expected an InferenceService dict with metadata.name and metadata.namespace "
            f"(from build_inference_service); got kind={isvc.get('kind')!r}, name={name!r}, "
            f"namespace={namespace!r}"
        )
    api_version = isvc.get("apiVersion", API_VERSION)
    version = api_version.split("/")[-1]
    client = _kserve_client(kube)
    api = client.api_instance
    from kubernetes.client.rest import ApiException

    try:
        current = api.get_namespaced_custom_object(GROUP, version, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise _api_error(
                exc, f"reading InferenceService {namespace}/{name}", namespace
            ) from None
        current = None
    except Exception as exc:  # urllib3 connection errors
        raise DeployError(f"the Kubernetes API is unreachable: {exc}") from exc
    try:
        if current is None:
            log.info("creating InferenceService %s/%s", namespace, name)
            out = api.create_namespaced_custom_object(GROUP, version, namespace, PLURAL, isvc)
        else:
            log.info("updating InferenceService %s/%s", namespace, name)
            body = {
                "metadata": {
                    "labels": meta.get("labels") or {},
                    "annotations": meta.get("annotations") or {},
                },
                "spec": _merge_patch(current.get("spec") or {}, isvc.get("spec") or {}),
            }
            out = api.patch_namespaced_custom_object(GROUP, version, namespace, PLURAL, name, body)
    except ApiException as exc:
        verb = "creating" if current is None else "updating"
        raise _api_error(exc, f"{verb} InferenceService {namespace}/{name}", namespace) from None
    generation = int((out.get("metadata") or {}).get("generation") or 0)
    deadline = time.monotonic() + wait_timeout
    detail = "no status yet"
    while True:
        try:
            obj = api.get_namespaced_custom_object(GROUP, version, namespace, PLURAL, name)
        except ApiException as exc:
            raise _api_error(
                exc, f"reading InferenceService {namespace}/{name}", namespace
            ) from None
        status = obj.get("status") or {}
        ready, detail = _ready_condition(obj)
        observed = int(status.get("observedGeneration") or 0)
        if ready and observed >= generation:
            url = (status.get("address") or {}).get("url") or status.get("url")
            if not url:
                raise DeployError(f"InferenceService {namespace}/{name} is Ready but has no URL")
            log.info("InferenceService %s/%s is ready at %s", namespace, name, url)
            return str(url)
        if time.monotonic() >= deadline:
            raise DeployError(
                f"InferenceService {namespace}/{name} (generation {generation}) was not Ready "
                f"after {wait_timeout:g} s: {detail} (kubectl describe inferenceservice -n "
                f"{namespace} {name})"
            )
        time.sleep(poll_interval)
