"""Deploy a candidate to KServe on the edge node, and smoke-test the endpoint over V1 / V2.

* :func:`build_inference_service` builds the InferenceService (kserve SDK model classes) from a
  target profile: node selector, tolerations, accelerator resources, serving resources, the
  ``kfedge-edge`` ServingRuntime, and the deployment mode annotation.
* :func:`deploy` creates or updates it through the Kubernetes API (``KServeClient``'s custom
  objects API; in-cluster config or a kubeconfig), waits until it is Ready and returns its URL.
* :func:`smoke_test` sends the sample the evaluation recorded and compares the answer with the
  output the evaluation measured (V2, and V1 where asked).
* :func:`deploy_local` runs the same server on a free loopback port in a subprocess, when no
  cluster is configured (``kfp.local`` / ``make run``), and runs the same smoke test over V1 and V2.
* :func:`deploy_candidate` is what the deploy component calls: mode ``auto`` | ``local`` |
  ``cluster``, sample from the dataset, InferenceService YAML, result JSON.

Deployment modes: KServe calls a plain Deployment ``RawDeployment`` (up to 0.15) and ``Standard``
(0.16 on, where ``RawDeployment`` is still accepted as the legacy name); the Knative mode is
``Serverless`` / ``Knative``. Any of the four is written to the
``serving.kserve.io/deploymentMode`` annotation as given; the default ``RawDeployment`` works on
both old and new controllers and needs no Knative on the edge cluster.

No heavy framework is imported here: the Kubernetes / KServe clients are imported lazily, and the
local server runs in its own process (ONNX Runtime / LiteRT only).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from kfedge.errors import ConfigError, InvalidInputError, KfedgeError, NotReadyError

log = logging.getLogger(__name__)

__all__ = [
    "DEPLOYMENT_MODES",
    "DeployError",
    "build_inference_service",
    "cluster_configured",
    "deploy",
    "deploy_candidate",
    "deploy_local",
    "isvc_name",
    "isvc_yaml",
    "smoke_test",
]

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
#: Accepted deployment modes: legacy and current KServe names.
DEPLOYMENT_MODES = ("RawDeployment", "Standard", "Serverless", "Knative")
MODEL_FORMATS = ("tflite", "onnx")
PROTOCOLS = ("v1", "v2")
#: Storage URI schemes KServe's storage initializer fetches.
KSERVE_STORAGE_SCHEMES = ("s3", "gs", "pvc", "http", "https", "hdfs", "webhdfs", "oci", "hf")
DEFAULT_RUNTIME = "kfedge-edge"
DEFAULT_SERVICE_ACCOUNT = "kfedge-s3"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class DeployError(KfedgeError):
    """Deploying or smoke-testing failed: API refused, not ready in time, wrong answer."""


# ------------------------------------------------------------------------------------ build
def isvc_name(text: str) -> str:
    """A valid InferenceService name (DNS-1035 label, <= 45 characters) from free text.

    KServe derives Service / Deployment names from it (``<name>-predictor``), so it is kept
    short enough for those to stay valid too.

    Args:
        text: E.g. a candidate name like ``ptq_int8`` or ``Prune50+INT8``.

    Returns:
        E.g. ``ptq-int8`` / ``prune50-int8``; ``kfedge-`` is put in front of a leading digit.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name:
        raise InvalidInputError(f"cannot make an InferenceService name from {text!r}")
    if not name[0].isalpha():
        name = f"kfedge-{name}"
    return name[:45].rstrip("-")


def _load_target(target: Any) -> Any:
    if isinstance(target, str | os.PathLike):
        from kfedge.targets import load_target

        return load_target(target)
    return target


def _check_storage_uri(uri: str) -> str:
    if uri.startswith("minio://"):
        # KFP's default artifact store gives minio://bucket/key; KServe reads the same as s3://.
        uri = "s3://" + uri[len("minio://") :]
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in KSERVE_STORAGE_SCHEMES or not uri.split("://", 1)[1].strip("/"):
        raise ConfigError(
            "a cluster deployment needs a storage URI KServe's storage initializer can fetch "
            f"({', '.join(s + '://' for s in KSERVE_STORAGE_SCHEMES)}); got {uri!r}"
        )
    return uri


def build_inference_service(
    name: str,
    storage_uri: str,
    target: Any,
    namespace: str = "kserve",
    model_format: str = "tflite",
    runtime: str = DEFAULT_RUNTIME,
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    deployment_mode: str = "RawDeployment",
    min_replicas: int = 1,
    protocol: str = "v2",
    max_replicas: int | None = None,
    check_storage_uri: bool = True,
) -> dict[str, Any]:
    """Build the InferenceService for a candidate on a target, as a plain dict.

    Args:
        name: InferenceService name (DNS-1035 label; see :func:`isvc_name`).
        storage_uri: Where KServe fetches the candidate directory (``s3://...``; a
            ``minio://`` URI from KFP's artifact store is rewritten to ``s3://``).
        target: Target name, YAML path, or a loaded ``Target``.
        namespace: Namespace of the InferenceService.
        model_format: ``tflite`` or ``onnx`` (must be one of the target's formats).
        runtime: ServingRuntime / ClusterServingRuntime to use.
        service_account: Service account with the S3 credentials (storage initializer).
        deployment_mode: ``RawDeployment`` / ``Standard`` (a plain Deployment) or
            ``Serverless`` / ``Knative``.
        min_replicas: Minimum replicas (>= 0; 0 only with Knative).
        protocol: ``v1`` or ``v2`` (Open Inference Protocol).
        max_replicas: Maximum replicas (None: KServe's default).
        check_storage_uri: Refuse URIs KServe cannot fetch (off only for a preview YAML).

    Returns:
        The InferenceService as a JSON-friendly dict (camelCase keys, as ``kubectl`` takes).

    Raises:
        ConfigError: A name, format, mode, protocol or URI is not valid.
    """
    from kserve import (
        ApiClient,
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import V1EnvVar, V1ObjectMeta, V1ResourceRequirements, V1Toleration

    if not _DNS1035.match(name) or len(name) > 63:
        raise ConfigError(
            f"InferenceService name {name!r} must be a DNS-1035 label (lowercase letters, digits, "
            "'-', starting with a letter, <= 63 characters); kfedge.deploy.isvc_name makes one"
        )
    if not _DNS1035.match(namespace.replace("_", "-")) or "_" in namespace:
        raise ConfigError(f"namespace {namespace!r} is not a valid Kubernetes namespace name")
    if model_format not in MODEL_FORMATS:
        raise ConfigError(f"model_format must be one of {MODEL_FORMATS}, got {model_format!r}")
    if deployment_mode not in DEPLOYMENT_MODES:
        raise ConfigError(
            f"deployment_mode must be one of {DEPLOYMENT_MODES}, got {deployment_mode!r}"
        )
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    knative = deployment_mode in ("Serverless", "Knative")
    if min_replicas < (0 if knative else 1):
        raise ConfigError(
            f"min_replicas must be >= {0 if knative else 1} in {deployment_mode} mode, "
            f"got {min_replicas}"
        )
    if max_replicas is not None and max_replicas < max(1, min_replicas):
        raise ConfigError(f"max_replicas ({max_replicas}) must be >= min_replicas ({min_replicas})")
    if check_storage_uri:
        storage_uri = _check_storage_uri(storage_uri)
    elif not storage_uri:
        raise ConfigError("storage_uri is empty")
    tgt = _load_target(target)
    if model_format not in tgt.formats:
        raise ConfigError(
            f"target {tgt.name} serves {', '.join(tgt.formats)} models, not {model_format}"
        )

    requests = dict(tgt.serving_resources.requests)
    limits = dict(tgt.serving_resources.limits)
    if tgt.accelerator is not None:
        # Extended resources: requests must equal limits; set both.
        requests[tgt.accelerator.resource] = str(tgt.accelerator.count)
        limits[tgt.accelerator.resource] = str(tgt.accelerator.count)
    env = [V1EnvVar(name="KFEDGE_THREADS", value=str(tgt.threads))] if tgt.threads else None
    args = None
    if model_format == "onnx" and tgt.onnx_providers != ["CPUExecutionProvider"]:
        args = [f"--providers={','.join(tgt.onnx_providers)}"]
    from kfedge._version import SERVING_IMAGE

    image = tgt.runtime_image if tgt.runtime_image != SERVING_IMAGE else None
    isvc = V1beta1InferenceService(
        api_version=API_VERSION,
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": "kfedge",
                "app.kubernetes.io/managed-by": "kfedge",
                "kfedge.io/target": tgt.name,
            },
            annotations={DEPLOYMENT_MODE_ANNOTATION: deployment_mode},
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                service_account_name=service_account or None,
                node_selector=tgt.k8s_node_selector() or None,
                tolerations=[
                    V1Toleration(
                        key=t.get("key"),
                        operator=t.get("operator"),
                        value=t.get("value"),
                        effect=t.get("effect"),
                        toleration_seconds=t.get("tolerationSeconds"),
                    )
                    for t in tgt.k8s_tolerations()
                ]
                or None,
                model=V1beta1ModelSpec(
                    model_format=V1beta1ModelFormat(name=model_format),
                    runtime=runtime,
                    storage_uri=storage_uri,
                    protocol_version=protocol,
                    image=image,
                    args=args,
                    env=env,
                    resources=V1ResourceRequirements(
                        requests=requests or None, limits=limits or None
                    ),
                ),
            )
        ),
    )
    out = ApiClient().sanitize_for_serialization(isvc)
    model = out["spec"]["predictor"]["model"]
    if not model.get("name"):
        model.pop("name", None)  # the SDK's empty container name; KServe names it itself
    return out


def isvc_yaml(isvc: dict[str, Any]) -> str:
    """The InferenceService as YAML (for ``kubectl apply -f``)."""
    import yaml

    return yaml.safe_dump(isvc, sort_keys=False)


# ----------------------------------------------------------------------------------- deploy
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


# ------------------------------------------------------------------------------- smoke test
def _http_json(
    url: str, body: dict[str, Any] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"content-type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": raw.decode(errors="replace")[:300]}
    except (urllib.error.URLError, OSError) as exc:
        raise DeployError(f"endpoint {url} is unreachable: {exc}") from exc


def smoke_test(
    url: str,
    model_name: str,
    sample: np.ndarray,
    expected: np.ndarray,
    atol: float = 1e-3,
    protocols: tuple[str, ...] = ("v2",),
    output_name: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Send one sample to the endpoint and compare the answer with the expected output.

    Args:
        url: Base URL of the server (``http://host:port``).
        model_name: Model name on the endpoint paths.
        sample: One example, with or without the batch dimension (e.g. ``[32, 32, 1]``).
        expected: The output the evaluation recorded for that example (e.g. 10 scores).
        atol: Largest accepted absolute difference per value.
        protocols: ``v2`` and / or ``v1``.
        output_name: Output to compare (default: the model's first output).
        timeout: Seconds per HTTP request.

    Returns:
        ``{"v2": {"max_abs_diff", "argmax", "expected_argmax", "latency_ms", "passed"}, ...,
        "max_abs_diff": ..., "passed": True}``.

    Raises:
        DeployError: The endpoint is unreachable, answered an error, or answered differently
            from the expected output by more than ``atol``.
    """
    base = url.rstrip("/")
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if not protocols or unknown:
        raise InvalidInputError(f"protocols must be a non-empty subset of {PROTOCOLS}")
    status, meta = _http_json(f"{base}/v2/models/{model_name}", timeout=timeout)
    if status != 200:
        raise DeployError(f"model metadata at {base}/v2/models/{model_name}: HTTP {status} {meta}")
    inputs = meta.get("inputs") or []
    if len(inputs) != 1:
        raise DeployError(f"the smoke test sends one input; the model has {len(inputs)}")
    spec = inputs[0]
    x = np.asarray(sample, dtype=np.float32)
    if x.ndim == len(spec["shape"]) - 1:
        x = x[None]
    if x.ndim != len(spec["shape"]) or x.shape[0] != 1:
        raise InvalidInputError(
            f"sample shape {list(np.shape(sample))} does not fit the model input {spec['shape']}"
        )
    want = np.asarray(expected, dtype=np.float64).reshape(-1)
    out_name = output_name or (meta.get("outputs") or [{}])[0].get("name")
    result: dict[str, Any] = {}
    for proto in protocols:
        start = time.perf_counter()
        if proto == "v2":
            body = {
                "id": "kfedge-smoke-test",
                "inputs": [
                    {
                        "name": spec["name"],
                        "shape": list(x.shape),
                        "datatype": spec["datatype"],
                        "data": x.reshape(-1).tolist(),
                    }
                ],
            }
            status, answer = _http_json(f"{base}/v2/models/{model_name}/infer", body, timeout)
            if status != 200:
                raise DeployError(f"V2 inference at {base}: HTTP {status} {answer}")
            outs = {o["name"]: o for o in answer.get("outputs", [])}
            if out_name not in outs:
                raise DeployError(f"V2 answer has outputs {list(outs)}, not {out_name!r}")
            got = np.asarray(outs[out_name]["data"], dtype=np.float64)
        else:
            status, answer = _http_json(
                f"{base}/v1/models/{model_name}:predict", {"instances": x.tolist()}, timeout
            )
            if status != 200:
                raise DeployError(f"V1 prediction at {base}: HTTP {status} {answer}")
            pred = answer.get("predictions", [None])[0]
            if isinstance(pred, dict):
                pred = pred.get(out_name)
            got = np.asarray(pred, dtype=np.float64)
        latency = (time.perf_counter() - start) * 1000
        got = got.reshape(-1)
        if got.size != want.size:
            raise DeployError(
                f"{proto.upper()} answer has {got.size} values, the evaluation recorded {want.size}"
            )
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        check = {
            "max_abs_diff": diff,
            "argmax": int(np.argmax(got)),
            "expected_argmax": int(np.argmax(want)),
            "latency_ms": round(latency, 3),
            "passed": bool(diff <= atol and math.isfinite(diff)),
        }
        result[proto] = check
        if not check["passed"]:
            raise DeployError(
                f"{proto.upper()} answer differs from the evaluated output: max abs diff "
                f"{diff:.3g} > atol {atol:g} (argmax {check['argmax']} vs "
                f"{check['expected_argmax']})"
            )
    result["max_abs_diff"] = max(result[p]["max_abs_diff"] for p in protocols)
    result["passed"] = True
    return result


# ------------------------------------------------------------------------------------ local
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise DeployError(
                f"the local model server exited with status {proc.returncode}:\n{tail}"
            )
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise NotReadyError(f"the local model server at {url} was not ready after {timeout:g} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def deploy_local(
    model_dir: str | Path,
    sample: np.ndarray,
    expected: np.ndarray,
    name: str = "model",
    atol: float = 1e-3,
    ready_timeout: float = 120,
    output_name: str | None = None,
) -> dict[str, Any]:
    """Serve the model on a free loopback port in a subprocess, smoke-test V1 and V2, stop it.

    Args:
        model_dir: Candidate directory or model file (.tflite / .onnx).
        sample: One example (see :func:`smoke_test`).
        expected: The output recorded for it at evaluation.
        name: Model name on the endpoint paths.
        atol: Largest accepted absolute difference.
        ready_timeout: Seconds to wait for the server to be ready.
        output_name: Output to compare (default: the first).

    Returns:
        ``{"mode": "local", "url", "model_name", "protocols": {"v1": ..., "v2": ...},
        "max_abs_diff", "passed", "detail"}``; a wrong answer gives ``passed: False`` with
        the reason in ``detail`` (the server is stopped either way).

    Raises:
        DeployError: The server did not start (its log tail is in the message).
    """
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise InvalidInputError(f"model not found: {model_dir}")
    log_file = tempfile.NamedTemporaryFile(prefix="kfedge-serve-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    result: dict[str, Any] = {"mode": "local", "model_name": name, "log": str(log_path)}
    for attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable,
            "-m",
            "kfedge.serving",
            f"--model_name={name}",
            f"--model_dir={model_dir}",
            f"--http_port={port}",
            "--host=127.0.0.1",
            "--enable_grpc=false",
        ]
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_ready(proc, url, log_path, ready_timeout)
        except DeployError:
            _stop(proc)
            if attempt < 2 and "address already in use" in log_path.read_text(errors="replace"):
                continue  # the free port was taken in between; try another
            raise
        except BaseException:
            _stop(proc)
            raise
        break
    try:
        result["url"] = url
        try:
            checks = smoke_test(
                url, name, sample, expected, atol, ("v1", "v2"), output_name=output_name
            )
            result.update(
                protocols={p: checks[p] for p in ("v1", "v2")},
                max_abs_diff=checks["max_abs_diff"],
                passed=True,
                detail=f"V1 and V2 answers match the evaluation (max abs diff "
                f"{checks['max_abs_diff']:.3g} <= {atol:g})",
            )
        except DeployError as exc:
            result.update(passed=False, detail=str(exc))
    finally:
        _stop(proc)
        log_file.close()
    log.info("local deploy of %s: %s", model_dir, result["detail"])
    return result


# -------------------------------------------------------------------------------- component
def _evaluation_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        for cand in ("evaluation.json", "metrics.json"):
            if (p / cand).is_file():
                return p / cand
        files = sorted(p.glob("*.json"))
        if len(files) != 1:
            raise InvalidInputError(
                f"{p} is a directory without evaluation.json (found {[f.name for f in files]})"
            )
        return files[0]
    return p


def recorded_sample(
    evaluation: str | Path, dataset_dir: str | Path
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The sample the evaluation recorded an output for, and that output.

    Args:
        evaluation: The evaluation JSON (file, or a directory holding it).
        dataset_dir: The split dataset the evaluation ran on.

    Returns:
        ``(sample, expected, output_name)``.
    """
    from kfedge.data import load_split

    path = _evaluation_file(evaluation)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not an evaluation JSON file: {exc}") from exc
    rec = data.get("outputs_sample") if isinstance(data, dict) else None
    if not isinstance(rec, dict) or "values" not in rec:
        raise InvalidInputError(
            f"{path} has no outputs_sample (expected {{index, split, output_name, values}} from "
            "kfedge's evaluate step)"
        )
    index = int(rec.get("index", 0))
    split = rec.get("split", "eval")
    x, _ = load_split(dataset_dir, split, limit=index + 1)
    if len(x) <= index:
        raise InvalidInputError(
            f"the {split} split has {len(x)} samples, the evaluation used {index}"
        )
    return x[index], np.asarray(rec["values"], dtype=np.float64), rec.get("output_name")


def deploy_candidate(
    model_dir: str | Path,
    evaluation: str | Path,
    dataset_dir: str | Path,
    target: str,
    endpoint_dir: str | Path,
    isvc_dir: str | Path,
    *,
    model_uri: str = "",
    name: str = "",
    namespace: str = "kserve",
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    storage_uri: str = "",
    mode: str = "auto",
    runtime: str = DEFAULT_RUNTIME,
    deployment_mode: str = "RawDeployment",
    wait_timeout: float = 300,
    atol: float = 1e-3,
    kube: Any = None,
    poll_interval: float = 5.0,
) -> dict[str, Any]:
    """Deploy a candidate (cluster or local) and smoke-test it; what the component runs.

    Writes ``isvc_dir/inferenceservice.yaml`` (the object applied, or in local mode the one
    that would be) and ``endpoint_dir/endpoint.json`` (the result), and raises after writing
    when the smoke test failed.

    Args:
        model_dir: The candidate directory (the KFP Model artifact path).
        evaluation: The candidate's evaluation JSON (``outputs_sample`` is compared).
        dataset_dir: The split dataset the evaluation used.
        target: Target profile name or YAML path.
        endpoint_dir: Output directory for ``endpoint.json``.
        isvc_dir: Output directory for ``inferenceservice.yaml``.
        model_uri: The Model artifact's URI (``s3://`` / ``minio://`` in a cluster).
        name: InferenceService / model name (default: from the candidate's name).
        namespace: Namespace of the InferenceService.
        service_account: Service account with the S3 credentials.
        storage_uri: Where KServe fetches the model (default: ``model_uri``).
        mode: ``auto`` (cluster when a Kubernetes API is configured, else local), ``local``
            or ``cluster``.
        runtime: ServingRuntime name.
        deployment_mode: See :func:`build_inference_service`.
        wait_timeout: Seconds to wait for Ready (cluster mode).
        atol: Largest accepted absolute difference in the smoke test.
        kube: KServeClient or kubeconfig path (cluster mode; default from the environment).
        poll_interval: Seconds between status reads (cluster mode).

    Returns:
        The endpoint result (``mode``, ``url``, ``passed``, ``detail``, ...).

    Raises:
        ConfigError: Bad mode / target / URI (before anything is deployed).
        DeployError: Deployment or smoke test failed.
    """
    from kfedge.candidate import load_candidate, model_path
    from kfedge.formats import detect_format

    if mode not in ("auto", "local", "cluster"):
        raise ConfigError(f"mode must be auto, local or cluster, got {mode!r}")
    resolved = mode if mode != "auto" else ("cluster" if cluster_configured() else "local")
    path = model_path(model_dir)
    fmt = detect_format(path)
    if fmt not in MODEL_FORMATS:
        raise ConfigError(f"only {MODEL_FORMATS} candidates can be deployed; {path} is {fmt}")
    try:
        cand_name = load_candidate(model_dir).name
    except KfedgeError:
        cand_name = Path(path).stem
    name = isvc_name(name or cand_name)
    sample, expected, output_name = recorded_sample(evaluation, dataset_dir)
    uri = storage_uri or model_uri
    isvc = build_inference_service(
        name,
        uri or str(Path(model_dir).resolve()),
        target,
        namespace=namespace,
        model_format=fmt,
        runtime=runtime,
        service_account=service_account,
        deployment_mode=deployment_mode,
        check_storage_uri=resolved == "cluster",
    )
    isvc_out = Path(isvc_dir)
    isvc_out.mkdir(parents=True, exist_ok=True)
    from kfedge.convert import write_atomic

    write_atomic(isvc_out / "inferenceservice.yaml", isvc_yaml(isvc).encode())
    if resolved == "local":
        result = deploy_local(
            model_dir, sample, expected, name=name, atol=atol, output_name=output_name
        )
    else:
        url = deploy(isvc, wait_timeout=wait_timeout, kube=kube, poll_interval=poll_interval)
        result = {"mode": "cluster", "url": url, "model_name": name, "namespace": namespace}
        try:
            checks = smoke_test(url, name, sample, expected, atol, ("v2",), output_name=output_name)
            result.update(
                protocols={"v2": checks["v2"]},
                max_abs_diff=checks["max_abs_diff"],
                passed=True,
                detail=f"V2 answer matches the evaluation at {url}",
            )
        except DeployError as exc:
            result.update(passed=False, detail=str(exc))
    result.update(
        target=str(target),
        candidate=cand_name,
        format=fmt,
        storage_uri=isvc["spec"]["predictor"]["model"]["storageUri"],
    )
    out = Path(endpoint_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "endpoint.json", json.dumps(result, indent=2, sort_keys=True).encode())
    if not result["passed"]:
        raise DeployError(f"smoke test failed ({result['mode']}): {result['detail']}")
    return result


# --------------------------------------------------------------------------------- examples
def write_examples(out_dir: str | Path, namespace: str = "kserve") -> list[Path]:
    """Write one example InferenceService per shipped target (``manifests/examples``).

    Each uses the target's preferred format and a placeholder S3 URI to replace.

    Args:
        out_dir: Destination folder.
        namespace: Namespace of the examples.

    Returns:
        The written files.
    """
    from kfedge.convert import write_atomic
    from kfedge.targets import list_targets, load_target

    out = Path(out_dir)
    written = []
    for tname in list_targets():
        tgt = load_target(tname)
        fmt = tgt.formats[0]
        isvc = build_inference_service(
            isvc_name(f"digits-{tname}"),
            f"s3://kfedge-models/{tname}/digits-{fmt}",
            tgt,
            namespace=namespace,
            model_format=fmt,
        )
        header = (
            f"# Example InferenceService for target {tname} ({tgt.description}).\n"
            "# Generated by `python -m kfedge.deploy examples manifests/examples`; do not edit.\n"
            "# Replace storageUri with your candidate's S3 prefix, then `kubectl apply -f`.\n"
        )
        path = write_atomic(out / f"isvc-{tname}.yaml", (header + isvc_yaml(isvc)).encode())
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - thin CLI
    if len(sys.argv) == 3 and sys.argv[1] == "examples":
        for p in write_examples(sys.argv[2]):
            print(p)
    else:
        print("usage: python -m kfedge.deploy examples OUT_DIR", file=sys.stderr)
        sys.exit(2)
