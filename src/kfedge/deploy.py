"""Deploy a candidate to KServe on the edge node (or locally), and smoke-test it.

What the ``deploy`` component runs (:func:`deploy_from_files` / :func:`deploy_candidate`),
built from one module per concern, whose public names are re-exported here:

* :mod:`kfedge.isvc`: :func:`build_inference_service` (the InferenceService from a target
  profile), :func:`isvc_name`, :func:`isvc_yaml`, :func:`write_examples`, :class:`DeployError`.
* :mod:`kfedge.kube`: :func:`deploy` creates or updates it through the Kubernetes API and waits
  until it is Ready for this spec; :func:`cluster_configured`, :func:`default_namespace`.
* :mod:`kfedge.smoke`: :func:`smoke_test` sends the sample the evaluation
  recorded and compare the answer with the output it measured (V2, and V1 where asked).
* :mod:`kfedge.local_deploy`: :func:`deploy_local` runs the same server on a free loopback port
  when no cluster is configured (``kfp.local`` / ``make run``), checked over V1 and V2.

The step talks only to the API server (it need not run on the edge node) and reads one small
JSON: the evaluation's ``outputs_sample`` carries the input sample with the output it gave, so no
dataset is needed (an evaluation written before inputs were recorded needs the dataset).
By default the InferenceService is named after the target, ``kfedge-<target>``
(:func:`kfedge.isvc.default_isvc_name`: one per target, so runs for two targets do not overwrite
each other and recurring runs update theirs), carries the candidate in its
``kfedge.io/candidate`` label, and goes to the namespace the step runs in
(:func:`kfedge.kube.default_namespace`); an InferenceService of that name that kfedge did not
make is never replaced.

No heavy framework is imported here: the Kubernetes / KServe clients are imported lazily, and the
local server runs in its own process (ONNX Runtime / LiteRT only).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kfedge.errors import ConfigError, InvalidInputError, KfedgeError
from kfedge.fsutil import write_json_atomic, write_text_atomic
from kfedge.isvc import (
    AUTO_RUNTIME,
    DEFAULT_RUNTIME,
    DEFAULT_SERVICE_ACCOUNT,
    DEFAULT_STORAGE_SECRET,
    DEPLOYMENT_MODES,
    MODEL_FORMATS,
    DeployError,
    TransientDeployError,
    build_inference_service,
    default_isvc_name,
    isvc_name,
    isvc_yaml,
    write_examples,
)
from kfedge.kube import cluster_configured, default_namespace, deploy
from kfedge.local_deploy import deploy_local, local_server
from kfedge.smoke import smoke_test

__all__ = [
    "AUTO_RUNTIME",
    "DEFAULT_RUNTIME",
    "DEFAULT_SERVICE_ACCOUNT",
    "DEFAULT_STORAGE_SECRET",
    "DEPLOYMENT_MODES",
    "DeployError",
    "TransientDeployError",
    "build_inference_service",
    "cluster_configured",
    "default_namespace",
    "deploy",
    "deploy_candidate",
    "deploy_from_files",
    "deploy_local",
    "isvc_name",
    "isvc_yaml",
    "local_server",
    "recorded_sample",
    "smoke_test",
    "write_examples",
]

MODES = ("auto", "local", "cluster")


class ArtifactLike(Protocol):
    """What :func:`deploy_from_files` uses of a KFP artifact (``kfp.dsl.Artifact`` has it)."""

    path: str
    uri: str
    metadata: dict[str, Any]


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
    evaluation: str | Path, dataset_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The sample the evaluation recorded an output for, and that output.

    Args:
        evaluation: The evaluation JSON (file, or a directory holding it), or the selection
            JSON (the select step copies the chosen candidate's ``outputs_sample`` there).
        dataset_dir: The split dataset the evaluation ran on; read only when the evaluation
            does not carry the input sample itself (files written before it did).

    Returns:
        ``(sample, expected, output_name)``.

    Raises:
        InvalidInputError: No valid ``outputs_sample``, no input in it and no dataset, or the
            split has too few samples.
    """
    from kfedge.data import load_split
    from kfedge.evaluation import load_outputs_sample

    path = _evaluation_file(evaluation)
    rec = load_outputs_sample(path)
    expected = np.asarray(rec.values, dtype=np.float64)
    if rec.input is not None:
        return rec.input.to_array(), expected, rec.output_name
    if dataset_dir is None:
        raise InvalidInputError(
            f"{path}: outputs_sample has no input (an evaluation from before kfedge recorded "
            "it): pass the dataset the evaluation ran on, or evaluate again"
        )
    x, _ = load_split(dataset_dir, rec.split, limit=rec.index + 1)
    if len(x) <= rec.index:
        raise InvalidInputError(
            f"the {rec.split} split has {len(x)} samples, the evaluation used {rec.index}"
        )
    return x[rec.index], expected, rec.output_name


def deploy_candidate(
    model_dir: str | Path,
    evaluation: str | Path,
    dataset_dir: str | Path | None,
    target: str,
    endpoint_dir: str | Path,
    isvc_dir: str | Path,
    *,
    model_uri: str = "",
    name: str = "",
    namespace: str = "",
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    storage_secret: str = DEFAULT_STORAGE_SECRET,
    storage_uri: str = "",
    mode: str = "auto",
    runtime: str = AUTO_RUNTIME,
    deployment_mode: str = "RawDeployment",
    wait_timeout: float = 300,
    atol: float = 1e-3,
    kube: Any = None,
    poll_interval: float = 5.0,
) -> dict[str, Any]:
    """Deploy a candidate (cluster or local) and smoke-test it.

    Writes ``isvc_dir/inferenceservice.yaml`` (the object applied, or in local mode the one
    that would be) and ``endpoint_dir/endpoint.json`` (the result), and raises after writing
    when the smoke test failed.

    Args:
        model_dir: The candidate directory (the KFP Model artifact path).
        evaluation: The candidate's evaluation (or the selection) JSON: its
            ``outputs_sample`` gives the sample sent and the answer expected.
        dataset_dir: The split dataset the evaluation used; None when the evaluation carries
            the input sample (kfedge's evaluations do).
        target: Target profile name or YAML path.
        endpoint_dir: Output directory for ``endpoint.json``.
        isvc_dir: Output directory for ``inferenceservice.yaml``.
        model_uri: The Model artifact's URI (``s3://`` / ``minio://`` in a cluster).
        name: InferenceService / model name (default: ``kfedge-<target>``, one per target
            whatever the candidate, which is in its ``kfedge.io/candidate`` label; see
            :func:`default_isvc_name`).
        namespace: Namespace of the InferenceService ("": the step's own, see
            :func:`default_namespace`).
        service_account: The predictor's ServiceAccount ("": the namespace's default).
        storage_secret: The Secret with KServe's S3 keys and settings, named by annotation
            ("": none; KServe then reads the Secrets the ServiceAccount lists).
        storage_uri: Where KServe fetches the model (default: ``model_uri``).
        mode: ``auto`` (cluster when a Kubernetes API is configured, else local), ``local``
            or ``cluster``.
        runtime: ServingRuntime name; ``auto``: ``kfedge-edge-<runtime>`` of the model's
            format (:func:`kfedge.isvc.resolve_runtime`).
        deployment_mode: See :func:`build_inference_service`.
        wait_timeout: Seconds to wait for Ready (cluster mode).
        atol: Largest accepted absolute difference in the smoke test.
        kube: KServeClient or kubeconfig path (cluster mode; default from the environment).
        poll_interval: Seconds between status reads (cluster mode).

    Returns:
        The endpoint result (``mode``, ``url``, ``model_name``, ``namespace``, ``passed``,
        ``detail``, ``protocols``, ``max_abs_diff``, ``target``, ``candidate``, ``format``,
        ``storage_uri``).

    Raises:
        ConfigError: Bad mode / target / URI (before anything is deployed).
        DeployError: Deployment or smoke test failed.
    """
    from kfedge.candidate import load_candidate, model_digest, model_path
    from kfedge.formats import detect_format

    if mode not in MODES:
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
    from kfedge.targets import load_target

    tgt = load_target(target)
    namespace = namespace or default_namespace(kube if isinstance(kube, str | Path) else None)
    name = isvc_name(name or default_isvc_name(tgt.name), namespace)
    sample, expected, output_name = recorded_sample(evaluation, dataset_dir)
    isvc = build_inference_service(
        name,
        storage_uri or model_uri or str(Path(model_dir).resolve()),
        tgt,
        namespace=namespace,
        model_format=fmt,
        runtime=runtime,
        service_account=service_account,
        deployment_mode=deployment_mode,
        check_storage_uri=resolved == "cluster",
        storage_secret=storage_secret,
        candidate=cand_name,
    )
    write_text_atomic(Path(isvc_dir) / "inferenceservice.yaml", isvc_yaml(isvc))
    if resolved == "local":
        result = deploy_local(
            model_dir, sample, expected, name=name, atol=atol, output_name=output_name
        )
    else:
        url = deploy(isvc, wait_timeout=wait_timeout, kube=kube, poll_interval=poll_interval)
        result = {"mode": "cluster", "url": url, "model_name": name}
        result.update(
            smoke_test(
                url,
                name,
                sample,
                expected,
                atol,
                ("v2",),
                output_name,
                check=False,
                model_version=model_digest(path),
            )
        )
    result.update(
        namespace=namespace,
        target=str(target),
        candidate=cand_name,
        format=fmt,
        storage_uri=isvc["spec"]["predictor"]["model"]["storageUri"],
    )
    write_json_atomic(Path(endpoint_dir) / "endpoint.json", result)
    if not result["passed"]:
        raise DeployError(f"smoke test failed ({result['mode']}): {result['detail']}")
    return result


def deploy_from_files(
    model: ArtifactLike,
    evaluation: ArtifactLike,
    dataset: ArtifactLike | None,
    target: str,
    endpoint: ArtifactLike,
    isvc_yaml: ArtifactLike,
    **options: Any,
) -> str:
    """What the deploy component runs: :func:`deploy_candidate` on its KFP artifacts.

    The artifacts' metadata is filled in for the KFP UI; the parameter names are the
    component's, so the component body is this one call.

    Args:
        model: The selected candidate (``.path``: its directory; ``.uri``: where KServe
            fetches it unless ``storage_uri`` is given).
        evaluation: The candidate's evaluation or the selection (``.path``: its JSON, whose
            ``outputs_sample`` holds the input sample and the expected answer).
        dataset: None (kfedge's evaluations carry the sample); the split dataset only for an
            evaluation written before they did.
        target: Target profile name or YAML path.
        endpoint: Output for ``endpoint.json``; metadata ``mode``, ``url``, ``model_name``,
            ``passed``, ``max_abs_diff``.
        isvc_yaml: Output for ``inferenceservice.yaml``; metadata ``namespace``, ``target``,
            ``name``.
        **options: Keyword options of :func:`deploy_candidate` (``name``, ``namespace``,
            ``service_account``, ``storage_secret``, ``storage_uri``, ``mode``, ``runtime``,
            ``deployment_mode``, ``wait_timeout``, ``atol``, ``kube``, ``poll_interval``).

    Returns:
        The endpoint URL the smoke test passed on.

    Raises:
        ConfigError: Bad mode / target / URI (before anything is deployed).
        DeployError: Deployment or smoke test failed (after ``endpoint.json`` is written).
    """
    result = deploy_candidate(
        model.path,
        evaluation.path,
        dataset.path if dataset is not None else None,
        target,
        endpoint.path,
        isvc_yaml.path,
        model_uri=model.uri,
        **options,
    )
    keep = ("mode", "url", "model_name", "passed", "max_abs_diff")
    endpoint.metadata.update({k: result[k] for k in keep})
    isvc_yaml.metadata.update(
        {"namespace": result["namespace"], "target": target, "name": result["model_name"]}
    )
    return result["url"]


if __name__ == "__main__":  # pragma: no cover - thin CLI
    if len(sys.argv) == 3 and sys.argv[1] == "examples":
        for p in write_examples(sys.argv[2]):
            print(p)
    else:
        print("usage: python -m kfedge.deploy examples OUT_DIR", file=sys.stderr)
        sys.exit(2)
