"""``kfedge doctor``: what a real cluster lacks for a kfedge run, before the run.

Each check reads the Kubeflow Pipelines API or the Kubernetes API (never writes) and gives one
:class:`Finding` per fact: ``ok``, ``warn`` (could not tell, or works with a caveat) or ``fail``
(the run or the deployment would not work), each with the fix. Checks:

* KFP backend version (``GET /apis/v2beta1/healthz``: ``tag_name``, ``multi_user``) against the
  support matrix and against what the compiled pipeline needs (:func:`kfedge.support.required_kfp`),
  and the compiled pipeline's references (:func:`kfedge.support.pipeline_problems`).
* KServe's API (discovery of ``serving.kserve.io/v1beta1`` and ``v1alpha1``) and the
  ``kfedge-edge`` ClusterServingRuntime serving the target's formats.
* Nodes matching the target's node selector, schedulable for its tolerations, with the
  accelerator and device-plugin resources allocatable; the target's RuntimeClass.
* The S3 Secret and ServiceAccount in the namespace, with the keys and annotations KServe's
  storage initializer reads (values are never read out or printed).
* The images' platforms (``kfedge/data/images.yaml``) against the target's architecture.

:func:`run_doctor` returns the findings; ``kfedge doctor`` (:func:`add_arguments`,
:func:`run_from_args`) and ``python -m kfedge.doctor`` (:func:`main`) print them. The
namespace defaults to the one a run would deploy into (:func:`kfedge.kube.default_namespace`:
the pod's, else the kubeconfig context's). The Kubernetes checks live in
:mod:`kfedge.doctor_kube`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from kfedge.errors import KfedgeError
from kfedge.support import (
    KFP_MIN,
    SUPPORT_MATRIX,
    parse_version,
    pipeline_problems,
    required_kfp,
)

__all__ = ["Finding", "add_arguments", "main", "run_doctor", "run_from_args"]

Level = Literal["ok", "warn", "fail"]
KFP_HEALTHZ = "/apis/v2beta1/healthz"
DEFAULT_RUNTIME = "auto"  # as deploy: kfedge-edge-<runtime> for each of the target's formats
DEFAULT_SECRET = "kfedge-s3"
DEFAULT_SERVICE_ACCOUNT = "kfedge-s3"
DEFAULT_PIPELINE = "edge-optimize-deploy"


@dataclass(frozen=True)
class Finding:
    """One fact about the cluster.

    Attributes:
        check: What was checked (``kfp``, ``kserve``, ``runtime``, ``nodes``, ``s3-secret``...).
        level: ``ok``, ``warn`` or ``fail``.
        message: What was found.
        fix: What to do about it (empty for ``ok``).
    """

    check: str
    level: Level
    message: str
    fix: str = ""

    def line(self) -> str:
        """The finding as one line: ``FAIL nodes: ... -> fix: ...``."""
        text = f"{self.level.upper():<4} {self.check}: {self.message}"
        return f"{text} -> fix: {self.fix}" if self.fix and self.level != "ok" else text


def _fmt(v: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in v)


def _pipeline_docs(pipeline: str | os.PathLike[str] | None) -> tuple[str, list[dict[str, Any]]]:
    if pipeline is None or (
        isinstance(pipeline, str) and "/" not in pipeline and "." not in pipeline
    ):
        from importlib import resources

        name = f"{pipeline or DEFAULT_PIPELINE}.yaml"
        text = resources.files("kfedge.pipelines").joinpath(name).read_text(encoding="utf-8")
    else:
        name, text = str(pipeline), Path(pipeline).read_text(encoding="utf-8")
    return name, [d for d in yaml.safe_load_all(text) if d]


# ------------------------------------------------------------------------------------- KFP
#: KFP's launcher and driver images are multi-arch from this backend release (PR #12804,
#: issue #12705): a step pinned to an arm64 node dies with "exec format error" before it.
KFP_ARM64_MIN = (2, 17)


def _check_kfp(
    host: str | None,
    token: str | None,
    namespace: str,
    pipeline: Any,
    timeout: float,
    arch: str = "amd64",
) -> list[Finding]:
    out: list[Finding] = []
    name, docs = _pipeline_docs(pipeline)
    need, why = required_kfp(docs)
    problems = pipeline_problems(docs)
    if problems:
        out.append(
            Finding(
                "pipeline",
                "fail",
                f"{name}: {len(problems)} reference(s) the KFP driver cannot resolve, first: "
                f"{problems[0]}",
                "recompile with `kfedge compile` from a fixed pipelines/edge.py",
            )
        )
    if not host:
        out.append(
            Finding(
                "kfp",
                "warn",
                f"no KFP endpoint given; not checked ({name} needs a KFP backend >= {_fmt(need)})",
                "pass --host or set KF_PIPELINES_ENDPOINT",
            )
        )
        return out
    from kfedge.submit import preflight

    host = host.rstrip("/")
    if not host.startswith(("http://", "https://")):
        host = "https://" + host
    try:
        health = preflight(host, token, timeout=timeout)
    except KfedgeError as exc:
        return [*out, Finding("kfp", "fail", str(exc), "check --host and the token")]
    tag = str(health.get("tag_name") or "")
    version = parse_version(tag)
    floor = max(KFP_MIN, need)
    if version is None:
        out.append(
            Finding(
                "kfp",
                "warn",
                f"the KFP backend at {host} does not say its version "
                f"(tag_name {tag or 'absent'!r}); {name} needs >= {_fmt(floor)}",
                "check the ml-pipeline image tag: kubectl -n kubeflow get deploy ml-pipeline "
                "-o jsonpath='{..image}'",
            )
        )
    elif version < floor:
        reason = "; ".join(why) if need > KFP_MIN else SUPPORT_MATRIX[0].reason
        out.append(
            Finding(
                "kfp",
                "fail",
                f"KFP backend {tag} is older than {_fmt(floor)}, which {name} needs ({reason})",
                f"upgrade Kubeflow Pipelines to >= {_fmt(floor)} (Kubeflow 1.11 ships 2.15)",
            )
        )
    else:
        out.append(Finding("kfp", "ok", f"KFP backend {tag} (>= {_fmt(floor)}) at {host}"))
    if version is not None and arch == "arm64" and version < KFP_ARM64_MIN:
        out.append(
            Finding(
                "kfp",
                "fail",
                f"KFP backend {tag} runs amd64-only launcher and driver images: the evaluate and "
                "benchmark steps pinned to the target's arm64 nodes die with 'exec format "
                f"error' (multi-arch from {_fmt(KFP_ARM64_MIN)}, PR #12804)",
                f"upgrade Kubeflow Pipelines to >= {_fmt(KFP_ARM64_MIN)}",
            )
        )
    if health.get("multi_user") and namespace == "kubeflow":
        out.append(
            Finding(
                "kfp",
                "warn",
                "KFP is multi-user: runs (and kfedge's InferenceServices) live in the profile "
                "namespace, not kubeflow",
                "pass --namespace YOUR-PROFILE-NAMESPACE",
            )
        )
    return out


# ---------------------------------------------------------------------------------- images
def _check_images(target: Any, registry: str | None) -> list[Finding]:
    from kfedge.images import image_catalog, image_for_ref

    out: list[Finding] = []
    component = next(s for s in image_catalog() if s.name == "component")
    checks = [("component", component.reference(registry), component)]
    runtime = image_for_ref(target.runtime_image)
    checks.append(("serving", target.runtime_image, runtime))
    for what, ref, spec in checks:
        if spec is None:
            out.append(
                Finding(
                    "images",
                    "warn",
                    f"{what} image {ref} is not one of kfedge's; its platforms are unknown",
                    f"check it has linux/{target.arch}: docker buildx imagetools inspect {ref}",
                )
            )
        elif not spec.builds_for(target.arch):
            out.append(
                Finding(
                    "images",
                    "fail",
                    f"{what} image {ref} is built for {', '.join(spec.platforms)}, not "
                    f"linux/{target.arch} (target {target.name})",
                    "rebuild it for both platforms: python -m kfedge.images build --push --run",
                )
            )
        else:
            out.append(Finding("images", "ok", f"{what} image {ref} has linux/{target.arch}"))
    return out


# ------------------------------------------------------------------------------------ main
def run_doctor(
    target: Any,
    namespace: str = "kubeflow",
    kfp_host: str | None = None,
    kfp_token: str | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    pipeline: str | os.PathLike[str] | None = None,
    secret: str = DEFAULT_SECRET,
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    runtime: str = DEFAULT_RUNTIME,
    registry: str | None = None,
    kube: bool = True,
    timeout: float = 10.0,
) -> list[Finding]:
    """Check a cluster for a kfedge run on ``target``; read-only.

    Args:
        target: Target profile name, YAML path or ``Target``.
        namespace: Namespace the runs and InferenceServices live in (a profile namespace on
            Kubeflow, ``kubeflow`` with standalone KFP).
        kfp_host: KFP API endpoint (default: ``KF_PIPELINES_ENDPOINT``; none: not checked).
        kfp_token: Bearer token for KFP (default: ``KF_PIPELINES_TOKEN``).
        kubeconfig: Kubeconfig path (default: in-cluster config, ``KUBECONFIG``, ~/.kube/config).
        pipeline: Compiled pipeline to check (a name shipped with kfedge or a YAML path;
            default edge-optimize-deploy).
        secret: The S3 Secret InferenceServices use.
        service_account: The ServiceAccount InferenceServices name.
        runtime: The ClusterServingRuntime deploy names (``auto``: the one of each format).
        registry: Registry the component image is pulled from (default: kfedge's).
        kube: Check the Kubernetes API (False: KFP, pipeline and images only).
        timeout: Seconds per HTTP request.

    Returns:
        The findings, in check order.

    Raises:
        KfedgeError: Bad target (before anything is contacted).
    """
    from kfedge.targets import load_target

    tgt = load_target(target)
    host = kfp_host if kfp_host is not None else os.environ.get("KF_PIPELINES_ENDPOINT")
    token = kfp_token if kfp_token is not None else os.environ.get("KF_PIPELINES_TOKEN")
    findings = _check_kfp(host, token, namespace, pipeline, timeout, tgt.arch)
    if kube:
        from kfedge import doctor_kube as k

        try:
            api = k.Kube(kubeconfig, timeout)
        except KfedgeError as exc:
            findings.append(
                Finding("kubernetes", "fail", str(exc), "set KUBECONFIG or pass --kubeconfig")
            )
        else:
            try:
                api.get("/version")
            except k.ApiError as exc:
                findings.append(Finding("kubernetes", "fail", str(exc), "check the kubeconfig"))
            else:
                findings += k.check_kserve(api, tgt, runtime)
                findings += k.check_nodes(api, tgt)
                findings += k.check_runtime_class(api, tgt)
                findings += k.check_s3(api, namespace, secret, service_account)
                findings += k.check_namespace(api, namespace, tgt)
    findings += _check_images(tgt, registry)
    return findings


def add_arguments(p: Any) -> None:
    """Add the ``doctor`` arguments to a parser (``kfedge doctor``, ``python -m kfedge.doctor``).

    Args:
        p: An ``argparse.ArgumentParser`` (or an argument group).
    """
    p.add_argument("--target", default="cpu-amd64", help="target profile name or YAML path")
    p.add_argument(
        "--namespace",
        default=None,
        help="namespace of the runs and InferenceServices (default: the pod's, else the "
        "kubeconfig context's: your Kubeflow profile)",
    )
    p.add_argument("--host", default=None, help="KFP API endpoint (KF_PIPELINES_ENDPOINT)")
    p.add_argument(
        "--kubeconfig", default=None, help="kubeconfig (default: KUBECONFIG / in-cluster)"
    )
    p.add_argument("--pipeline", default=None, help="compiled pipeline name or YAML path")
    p.add_argument("--registry", default=None, help="registry the images are pulled from")
    p.add_argument("--no-kube", action="store_true", help="skip the Kubernetes API checks")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the checks for parsed arguments and print one line per finding.

    Args:
        args: Parsed with the arguments of :func:`add_arguments`.

    Returns:
        1 when a check failed, else 0.
    """
    from kfedge.kube import default_namespace

    findings = run_doctor(
        args.target,
        namespace=args.namespace or default_namespace(args.kubeconfig),
        kfp_host=args.host,
        kubeconfig=args.kubeconfig,
        pipeline=args.pipeline,
        registry=args.registry,
        kube=not args.no_kube,
    )
    for f in findings:
        print(f.line())
    fails = sum(f.level == "fail" for f in findings)
    warns = sum(f.level == "warn" for f in findings)
    print(f"{fails} failed, {warns} warnings, {len(findings) - fails - warns} ok")
    return 1 if fails else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kfedge.doctor``: the checks as a command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        0 all passed (warnings allowed), 1 a check failed, 2 bad input.
    """
    parser = argparse.ArgumentParser(prog="kfedge doctor", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except KfedgeError as exc:
        print(f"kfedge doctor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover - thin CLI
    sys.exit(main())
