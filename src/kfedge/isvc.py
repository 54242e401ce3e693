"""The KServe InferenceService for a candidate on an edge target, and the shared deploy names.

:func:`build_inference_service` builds it with the kserve SDK model classes from a target
profile: node selector, tolerations, accelerator resources, serving resources, what the device
needs (the profile's ``devices``: RuntimeClass, device-plugin resources, host device mounts),
a kfedge ClusterServingRuntime named explicitly (never KServe's auto-selection: its default
Triton runtime also claims onnx; by default the one-runtime ``kfedge-edge-<runtime>`` of the
model's format, :func:`resolve_runtime`), the S3 Secret named by annotation, and the deployment mode
annotation. :func:`isvc_name` makes a name KServe can derive all its objects from;
:func:`write_examples` writes one example per shipped target (``manifests/examples``).

S3 credentials: KServe's storage initializer takes them from the Secret an InferenceService
annotation names (``serving.kserve.io/storageSecretName`` in KServe's kustomize
``inferenceservice-config``, ``serving.kserve.io/secretName`` in its Helm chart's; both are set),
which takes precedence over the Secrets the predictor's ServiceAccount lists (kserve/kserve
``pkg/credentials/service_account_credentials.go``, ``CreateSecretVolumeAndEnv``;
``config/configmap/inferenceservice.yaml``: "When using storageUri the order of the precedence
is: secret name reference annotation > secret name references from service account").

Deployment modes: KServe calls a plain Deployment ``RawDeployment`` (up to 0.15) and ``Standard``
(0.16 on, where ``RawDeployment`` is still accepted as the legacy name); the Knative mode is
``Serverless`` / ``Knative``. Any of the four is written to the
``serving.kserve.io/deploymentMode`` annotation as given; the default ``RawDeployment`` works on
both old and new controllers and needs no Knative on the edge cluster.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from kfedge.errors import ConfigError, InvalidInputError, KfedgeError, TransientError
from kfedge.fsutil import write_text_atomic
from kfedge.uris import kserve_storage_uri

__all__ = [
    "AUTO_RUNTIME",
    "DEFAULT_RUNTIME",
    "DEFAULT_SERVICE_ACCOUNT",
    "DEFAULT_STORAGE_SECRET",
    "DEPLOYMENT_MODES",
    "MODEL_FORMATS",
    "PROTOCOLS",
    "STORAGE_SECRET_ANNOTATIONS",
    "DeployError",
    "TransientDeployError",
    "build_inference_service",
    "isvc_name",
    "isvc_yaml",
    "resolve_runtime",
    "write_examples",
]

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
#: Accepted deployment modes: legacy and current KServe names.
DEPLOYMENT_MODES = ("RawDeployment", "Standard", "Serverless", "Knative")
MODEL_FORMATS = ("tflite", "onnx", "openvino")
PROTOCOLS = ("v1", "v2")
#: The ClusterServingRuntime with every runtime (the kfedge-serving image).
DEFAULT_RUNTIME = "kfedge-edge"
#: ``runtime`` value that picks the one-runtime ClusterServingRuntime of the model's format.
AUTO_RUNTIME = "auto"
DEFAULT_SERVICE_ACCOUNT = "kfedge-s3"
#: The Secret with the S3 keys and settings (manifests/overlays create it in the namespace).
DEFAULT_STORAGE_SECRET = "kfedge-s3"
#: Annotations naming the storage Secret: KServe's kustomize default, then its Helm default.
#: Istio's per-pod injection switch. KServe copies the InferenceService's annotations onto the
#: predictor's pods (kserve ``components/predictor.go``: all but
#: ``ServiceAnnotationDisallowedList``).
ISTIO_INJECT_ANNOTATION = "sidecar.istio.io/inject"
STORAGE_SECRET_ANNOTATIONS = ("serving.kserve.io/storageSecretName", "serving.kserve.io/secretName")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
#: KServe's longest name derived from an InferenceService's: in Serverless mode Knative's
#: private Service of the first revision, ``<name>-predictor-00001-private``, a DNS-1035 label.
_LONGEST_SUFFIX = len("-predictor-00001-private")
#: RawDeployment's Ingress host, KServe's default ``domainTemplate``
#: ``{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}`` with the component name
#: ``<name>-predictor``: one DNS label (reconcilers/ingress/domain.go checks it).
_HOST_LABEL_SUFFIX = len("-predictor-")
_MIN_NAME = 16


class DeployError(KfedgeError):
    """Deploying or smoke-testing failed: API refused, not ready in time, wrong answer."""


class TransientDeployError(DeployError, TransientError):
    """The Kubernetes API failed in a way a retry can fix (409, 429, 5xx, unreachable)."""


def resolve_runtime(runtime: str, model_format: str, runtime_image: str) -> str:
    """The ClusterServingRuntime an InferenceService names.

    Args:
        runtime: A runtime name, or :data:`AUTO_RUNTIME`.
        model_format: ``tflite``, ``onnx`` or ``openvino``.
        runtime_image: The target profile's serving image.

    Returns:
        ``runtime`` as given; for ``auto``, ``kfedge-edge-<runtime>`` whose image serves only
        ``model_format`` (``kfedge-edge-litert`` for tflite: an edge device pulls only the
        runtime its model needs), or ``kfedge-edge`` when the target names its own serving
        image (which replaces the runtime's image on the InferenceService).
    """
    if runtime != AUTO_RUNTIME:
        return runtime
    from kfedge._version import SERVING_IMAGE
    from kfedge.images import serving_image_for

    if runtime_image != SERVING_IMAGE:
        return DEFAULT_RUNTIME
    return DEFAULT_RUNTIME + serving_image_for(model_format).name.removeprefix("serving")


#: The label naming the candidate an InferenceService serves.
CANDIDATE_LABEL = "kfedge.io/candidate"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


def default_isvc_name(target: str) -> str:
    """The InferenceService a target's runs deploy to when none is named: ``kfedge-<target>``.

    One per target and namespace, whatever the candidate (its name is in the
    :data:`CANDIDATE_LABEL` label): recurring runs update it instead of leaving one
    InferenceService per candidate behind, each holding the node's accelerator. A second
    model for the same target in the same namespace needs its own ``name``.
    """
    return isvc_name(f"kfedge-{target}")


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value (<= 63 of ``[A-Za-z0-9-_.]``, alphanumeric ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def isvc_name(text: str, namespace: str | None = None) -> str:
    """A valid InferenceService name from free text, short enough for what KServe derives.

    KServe names the predictor's Deployment / Service ``<name>-predictor``; in Serverless mode
    Knative adds revisions (``<name>-predictor-00001-private`` must stay a 63-character DNS
    label, so the name has at most 39 characters); in RawDeployment mode the Ingress host
    ``<name>-predictor-<namespace>.<domain>`` is one DNS label. A longer name is cut and ends
    with 6 hex digits of its hash, so two long names stay apart.

    Args:
        text: E.g. ``cpu-arm64-ptq_int8`` (target and candidate) or ``Prune50+INT8``.
        namespace: The namespace it goes to (its length shortens the limit; None: not known).

    Returns:
        E.g. ``cpu-arm64-ptq-int8`` / ``prune50-int8``; ``kfedge-`` is put in front of a
        leading digit.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name:
        raise InvalidInputError(f"cannot make an InferenceService name from {text!r}")
    if not name[0].isalpha():
        name = f"kfedge-{name}"
    limit = 63 - _LONGEST_SUFFIX
    if namespace:
        limit = max(_MIN_NAME, min(limit, 63 - _HOST_LABEL_SUFFIX - len(namespace)))
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


def build_inference_service(
    name: str,
    storage_uri: str,
    target: Any,
    namespace: str = "default",
    model_format: str = "tflite",
    runtime: str = AUTO_RUNTIME,
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    deployment_mode: str = "RawDeployment",
    min_replicas: int = 1,
    protocol: str = "v2",
    max_replicas: int | None = None,
    check_storage_uri: bool = True,
    storage_secret: str = DEFAULT_STORAGE_SECRET,
    istio_sidecar: bool = False,
    candidate: str = "",
) -> dict[str, Any]:
    """Build the InferenceService for a candidate on a target, as a plain dict.

    Args:
        name: InferenceService name (DNS-1035 label; see :func:`isvc_name`).
        storage_uri: Where KServe fetches the candidate directory (``s3://...``; a
            ``minio://`` URI from KFP's artifact store is rewritten to ``s3://``).
        target: Target name, YAML path, or a loaded ``Target``.
        namespace: Namespace of the InferenceService.
        model_format: ``tflite`` or ``onnx`` (must be one of the target's formats).
        runtime: ServingRuntime / ClusterServingRuntime to name (never left to KServe's
            auto-selection); ``auto``: the one-runtime kfedge runtime of ``model_format``
            (:func:`resolve_runtime`).
        service_account: The predictor's ServiceAccount ("": the namespace's default); KServe
            falls back to the S3 Secrets it lists when no ``storage_secret`` is named.
        deployment_mode: ``RawDeployment`` / ``Standard`` (a plain Deployment) or
            ``Serverless`` / ``Knative``.
        min_replicas: Minimum replicas (>= 0; 0 only with Knative).
        protocol: ``v1`` or ``v2`` (Open Inference Protocol).
        max_replicas: Maximum replicas (None: KServe's default).
        check_storage_uri: Refuse URIs KServe cannot fetch (off only for a preview YAML).
        storage_secret: The Secret with the S3 keys and settings, named by annotation
            (:data:`STORAGE_SECRET_ANNOTATIONS`); "" names none.
        istio_sidecar: Let Istio inject its sidecar into the predictor (where the namespace
            has ``istio-injection: enabled``). Off by default: KFP runs its steps without a
            sidecar (``sidecar.istio.io/inject: "false"``, KFP ``apiserver/template``), and in
            a Kubeflow profile the mesh's authorization policies then refuse the deploy step's
            smoke test (``403 RBAC: access denied``) at a predictor that has one. With it on,
            allow the caller with an Istio AuthorizationPolicy in the profile.
        candidate: The candidate served, put in the :data:`CANDIDATE_LABEL` label.

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
    from kubernetes.client import (
        V1EnvVar,
        V1HostPathVolumeSource,
        V1ObjectMeta,
        V1ResourceRequirements,
        V1Toleration,
        V1Volume,
        V1VolumeMount,
    )

    if not _DNS1035.match(name) or len(name) > 63:
        raise ConfigError(
            f"InferenceService name {name!r} must be a DNS-1035 label (lowercase letters, digits, "
            "'-', starting with a letter, <= 63 characters); kfedge.isvc.isvc_name makes one"
        )
    if not _DNS1035.match(namespace.replace("_", "-")) or "_" in namespace:
        raise ConfigError(f"namespace {namespace!r} is not a valid Kubernetes namespace name")
    if not runtime:
        raise ConfigError(
            "runtime is empty: name the ServingRuntime (auto, kfedge-edge, "
            "kfedge-edge-litert, ...); KServe's auto-selection "
            "would give onnx models to its Triton runtime"
        )
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
        storage_uri = kserve_storage_uri(storage_uri)
    elif not storage_uri:
        raise ConfigError("storage_uri is empty")
    from kfedge.targets import load_target

    tgt = load_target(target)
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
    device = tgt.devices.k8s()
    requests.update((device.get("resources") or {}).get("requests") or {})
    limits.update((device.get("resources") or {}).get("limits") or {})
    env = [V1EnvVar(name="KFEDGE_THREADS", value=str(tgt.threads))] if tgt.threads else None
    args = server_args(tgt, model_format) or None
    from kfedge._version import SERVING_IMAGE

    image = tgt.runtime_image if tgt.runtime_image != SERVING_IMAGE else None
    runtime = resolve_runtime(runtime, model_format, tgt.runtime_image)
    isvc = V1beta1InferenceService(
        api_version=API_VERSION,
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": "kfedge",
                MANAGED_BY_LABEL: "kfedge",
                "kfedge.io/target": tgt.name,
                **({CANDIDATE_LABEL: label_value(candidate)} if label_value(candidate) else {}),
            },
            annotations={
                DEPLOYMENT_MODE_ANNOTATION: deployment_mode,
                **{a: storage_secret for a in STORAGE_SECRET_ANNOTATIONS if storage_secret},
                **({} if istio_sidecar else {ISTIO_INJECT_ANNOTATION: "false"}),
            },
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                service_account_name=service_account or None,
                runtime_class_name=device.get("runtimeClassName"),
                volumes=[
                    V1Volume(
                        name=v["name"], host_path=V1HostPathVolumeSource(path=v["hostPath"]["path"])
                    )
                    for v in device.get("volumes", [])
                ]
                or None,
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
                    volume_mounts=[
                        V1VolumeMount(name=m["name"], mount_path=m["mountPath"])
                        for m in device.get("volumeMounts", [])
                    ]
                    or None,
                    security_context=_device_security_context(device),
                ),
            )
        ),
    )
    out = ApiClient().sanitize_for_serialization(isvc)
    if not knative and exclusive_device(tgt):
        out["spec"]["predictor"]["deploymentStrategy"] = {"type": "Recreate"}
    model = out["spec"]["predictor"]["model"]
    if not model.get("name"):
        model.pop("name", None)  # the SDK's empty container name; KServe names it itself
    return out


def server_args(target: Any, model_format: str) -> list[str]:
    """The model server's options that make it run a model as the evaluation ran it.

    The target's ONNX Runtime providers and their options (TensorRT FP16 and engine cache,
    OpenVINO's NPU ``device_type``), OpenVINO device and TFLite delegate, and, where the
    profile asks for an accelerator without ``allow_cpu_fallback``, ``--cpu_fallback=refuse``:
    a node without the device then never serves (the evaluation refused it too) instead of
    serving on the CPU what was measured on the accelerator.
    """
    import json

    args: list[str] = []
    accelerated = False
    if model_format == "onnx" and target.onnx_providers != ["CPUExecutionProvider"]:
        args.append(f"--providers={','.join(target.onnx_providers)}")
        accelerated = True
    if model_format == "onnx" and target.onnx_provider_options:
        options = json.dumps(target.onnx_provider_options, sort_keys=True, separators=(",", ":"))
        args.append(f"--provider_options={options}")
    if model_format == "openvino" and target.openvino_device != "CPU":
        args.append(f"--device={target.openvino_device}")
        accelerated = True
    if model_format == "tflite" and target.tflite_delegate:
        args.append(f"--delegate={target.tflite_delegate}")
        accelerated = True
    if accelerated and not target.allow_cpu_fallback:
        args.append("--cpu_fallback=refuse")
    return args


def exclusive_device(target: Any) -> bool:
    """Whether a target's predictor holds a device one pod at a time (accelerator, host device).

    Such a predictor is replaced with the ``Recreate`` strategy: KServe's raw Deployment rolls
    out with RollingUpdate (25 % surge, none unavailable: kserve ``deployment_reconciler.go``
    ``setDefaultDeploymentSpec``), whose surged pod never schedules on a node with one GPU,
    NPU or USB device, so the old model would keep serving. ``spec.predictor.
    deploymentStrategy`` (KServe >= 0.15, raw deployment mode only) replaces it.
    """
    devices = target.devices
    return bool(
        target.accelerator is not None
        or devices.host_paths
        or devices.resources
        or devices.privileged
    )


def _device_security_context(device: dict[str, Any]) -> Any:
    """The container's securityContext for host device nodes, over the runtime's restricted one.

    KServe merges the InferenceService's container over the runtime's, so what the runtime
    sets stays unless overridden: ``privileged`` needs ``allowPrivilegeEscalation`` (the API
    server refuses privileged with it false), and device nodes on the host belong to root,
    which the runtime's non-root user (10001) cannot open.
    """
    if not (device.get("securityContext") or {}).get("privileged"):
        return None
    from kubernetes.client import V1SecurityContext

    return V1SecurityContext(
        privileged=True, allow_privilege_escalation=True, run_as_non_root=False, run_as_user=0
    )


def isvc_yaml(isvc: dict[str, Any]) -> str:
    """The InferenceService as YAML (for ``kubectl apply -f``)."""
    import yaml

    return yaml.safe_dump(isvc, sort_keys=False)


def write_examples(out_dir: str | Path, namespace: str = "kubeflow-user-example-com") -> list[Path]:
    """Write one example InferenceService per shipped target (``manifests/examples``).

    Each uses the target's preferred format and a placeholder S3 URI to replace.

    Args:
        out_dir: Destination folder.
        namespace: Namespace of the examples.

    Returns:
        The written files.
    """
    from kfedge.targets import list_targets, load_target

    out = Path(out_dir)
    written = []
    for tname in list_targets():
        tgt = load_target(tname)
        fmt = tgt.formats[0]
        isvc = build_inference_service(
            isvc_name(f"{tname}-digits", namespace),
            f"s3://kfedge-models/{tname}/digits-{fmt}",
            tgt,
            namespace=namespace,
            model_format=fmt,
        )
        header = (
            f"# Example InferenceService for target {tname} ({tgt.description}).\n"
            "# Generated by `python -m kfedge.deploy examples manifests/examples`; do not edit.\n"
            "# Replace storageUri with your candidate's S3 prefix and the namespace with your\n"
            "# profile's (it holds the Secret kfedge-s3), then `kubectl apply -f`.\n"
        )
        path = write_text_atomic(out / f"isvc-{tname}.yaml", header + isvc_yaml(isvc))
        written.append(path)
    return written
