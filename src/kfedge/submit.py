"""Submit a compiled kfedge pipeline to Kubeflow Pipelines (``kfedge submit``).

Everything that can be checked locally is checked before the server is contacted: the
pipeline file, the parameter names and types (against the pipeline's root
``inputDefinitions``), the target profile, the techniques (``auto`` becomes the target's
plan, so ``-p target=coral-edgetpu`` alone runs only what an Edge TPU runs) and the goals.
Then the pipeline is uploaded through :class:`kfp.Client` (a new version when a pipeline of
that name exists), the experiment is created or reused, a run is started and, by default,
waited for.

Connection settings follow kfp.Client: the host is ``--host`` or ``KF_PIPELINES_ENDPOINT``
(else kfp's in-cluster / kubeconfig discovery), the UI links use ``KF_PIPELINES_UI_ENDPOINT``
when set. Authentication: a bearer token from ``KF_PIPELINES_TOKEN`` (kfp's
``existing_token``), else, inside a Kubeflow pod, the projected service-account token kfp
reads from ``KF_PIPELINES_SA_TOKEN_PATH`` (default
``/var/run/secrets/kubeflow/pipelines/token``). Tokens are never printed or logged.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from kfedge.errors import ConfigError, KfedgeError, NotFoundError

__all__ = [
    "BUILTIN_PIPELINES",
    "LIST_PARAMS",
    "TOKEN_ENV",
    "load_pipeline_spec",
    "parse_params",
    "pipeline_path",
    "preflight",
    "prepare_params",
    "submit",
]

#: The compiled pipelines kfedge ships (next to ``kfedge.pipelines``).
BUILTIN_PIPELINES = ("edge-optimize-deploy", "edge-optimize", "edge-evaluate")
#: Parameters that take a list; ``key=a,b`` becomes ``["a", "b"]``.
LIST_PARAMS = ("techniques", "model_uris")
#: Environment variable holding a bearer token for the KFP API (kfp's ``existing_token``).
TOKEN_ENV = "KF_PIPELINES_TOKEN"
ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
UI_ENDPOINT_ENV = "KF_PIPELINES_UI_ENDPOINT"
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

_HEALTHZ = "/apis/v2beta1/healthz"


# --------------------------------------------------------------------------- parameters


def parse_params(items: list[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` command-line parameters.

    A value is parsed as JSON when it is valid JSON (numbers, lists, objects, ``true`` /
    ``false``), else kept as a string. For the list-typed parameters (:data:`LIST_PARAMS`) a
    plain string is a comma-separated list: ``techniques=ptq-int8,prune``.

    Args:
        items: The ``KEY=VALUE`` strings, in order.

    Returns:
        The parameters by name.

    Raises:
        ConfigError: An item without ``=``, with an empty key, or a key given twice.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"pipeline parameter {item!r} is not KEY=VALUE (e.g. -p target=cpu-arm64)"
            )
        if key in params:
            raise ConfigError(f"pipeline parameter {key!r} is given twice")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if key in LIST_PARAMS and isinstance(value, str):
            value = _split_list(value)
        params[key] = value
    return params


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def pipeline_path(pipeline: str | os.PathLike[str]) -> Path:
    """The compiled YAML of a shipped pipeline name, or a user's YAML file.

    Args:
        pipeline: One of :data:`BUILTIN_PIPELINES`, or a path to a compiled pipeline YAML.

    Returns:
        The path of the YAML file.

    Raises:
        NotFoundError: Neither a shipped pipeline name nor an existing file.
    """
    name = str(pipeline)
    if name in BUILTIN_PIPELINES:
        import kfedge.pipelines

        return Path(kfedge.pipelines.__file__).parent / f"{name}.yaml"
    path = Path(name).expanduser()
    if not path.is_file():
        raise NotFoundError(
            f"pipeline {name!r} is neither one of {', '.join(BUILTIN_PIPELINES)} "
            "nor an existing compiled pipeline YAML file"
        )
    return path


def load_pipeline_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the PipelineSpec document of a compiled pipeline YAML.

    Args:
        path: Compiled pipeline YAML (``kfp.compiler.Compiler().compile`` output; a second
            document with the platform spec, as kfp-kubernetes writes, is allowed).

    Returns:
        The PipelineSpec as a dict (``pipelineInfo``, ``root``, ...).

    Raises:
        ConfigError: Not YAML, or no document with ``pipelineInfo`` and ``root``.
    """
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read pipeline YAML {path}: {first}") from None
    for doc in docs:
        if isinstance(doc, dict) and "pipelineInfo" in doc and "root" in doc:
            if not doc["pipelineInfo"].get("name"):
                raise ConfigError(f"pipeline YAML {path} has no pipelineInfo.name")
            return doc
    raise ConfigError(
        f"{path} is not a compiled KFP pipeline: expected a YAML document with "
        "pipelineInfo and root (compile it with kfp.compiler.Compiler)"
    )


def _inputs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    root = spec.get("root") or {}
    return dict(((root.get("inputDefinitions") or {}).get("parameters")) or {})


def _coerce(name: str, value: Any, decl: dict[str, Any], pipeline: str) -> Any:
    """A parameter value in the type the pipeline declares, or a ConfigError."""
    kind = decl.get("parameterType", "STRING")
    bad = ConfigError(
        f"parameter {name!r} of pipeline {pipeline} is {kind}; got {value!r} "
        f"({type(value).__name__})"
    )
    if value is None:
        raise ConfigError(
            f"parameter {name!r} of pipeline {pipeline} is {kind}; got null "
            "(leave the parameter out to use its default)"
        )
    if kind == "STRING":
        return value if isinstance(value, str) else json.dumps(value)
    if kind == "NUMBER_INTEGER":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        if isinstance(value, int):
            return value
        raise bad
    if kind == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if kind == "BOOLEAN":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "LIST":
        if isinstance(value, str):
            return _split_list(value)
        if not isinstance(value, list | tuple):
            raise bad
        return list(value)
    if kind == "STRUCT":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise bad from None
        if not isinstance(value, dict):
            raise bad
        return value
    return value


def _is_auto(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in ("", "auto")
    return isinstance(value, list | tuple) and list(value) in ([], ["auto"])


def prepare_params(spec: dict[str, Any], params: dict[str, Any] | None) -> dict[str, Any]:
    """Check and complete run parameters against a pipeline, before any network.

    Args:
        spec: The PipelineSpec (see :func:`load_pipeline_spec`).
        params: Parameters by name (values as :func:`parse_params` gives them, or Python
            values; ``goals_json`` may be a dict).

    Returns:
        The parameters to send, in the declared types. When ``target`` is given and
        ``techniques`` is absent or ``"auto"``, ``techniques`` is the target's plan without the
        FP32 reference (the pipeline exports that one separately); explicit techniques are
        checked against the target and sent without the FP32 reference too.

    Raises:
        ConfigError: Unknown parameter names (the message lists the accepted ones), values of
            the wrong type, missing required parameters, techniques the target does not run,
            or invalid goals.
        NotFoundError: Unknown target name or missing target file.
    """
    name = spec["pipelineInfo"]["name"]
    inputs = _inputs(spec)
    params = dict(params or {})
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        accepted = ", ".join(f"{k} ({v.get('parameterType', '?')})" for k, v in inputs.items())
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for pipeline {name}; "
            f"accepted: {accepted or 'none'}"
        )
    missing = [k for k, v in inputs.items() if not v.get("isOptional") and "defaultValue" not in v]
    missing = [k for k in missing if k not in params]
    if missing:
        raise ConfigError(f"pipeline {name} needs parameter(s) {', '.join(missing)}")

    target = None
    if "target" in inputs and (
        "target" in params or "techniques" in params or "goals_json" in params
    ):
        from kfedge.targets import load_target

        target_name = params.get("target", inputs["target"].get("defaultValue"))
        if target_name:
            target = load_target(str(target_name))
    if "techniques" in inputs and target is not None:
        from kfedge.provision import plan_techniques

        requested = params.get("techniques")
        if _is_auto(requested):
            if "target" in params or requested is not None:
                params["techniques"] = plan_techniques("auto", target)[1:]
        else:
            if isinstance(requested, str):
                requested = _split_list(requested)
            if not isinstance(requested, list | tuple) or not all(
                isinstance(t, str) for t in requested
            ):
                raise ConfigError(
                    f"techniques must be a list of technique names or 'auto'; got {requested!r}"
                )
            params["techniques"] = plan_techniques(list(requested), target)[1:]
    if "goals_json" in params:
        goals = params["goals_json"]
        if target is not None:
            from kfedge.provision import check_goals

            check_goals(goals, target)
        elif isinstance(goals, str):
            try:
                json.loads(goals)
            except ValueError as exc:
                raise ConfigError(f"goals_json must be a JSON object, got {goals!r}") from exc
        if isinstance(goals, dict):
            params["goals_json"] = json.dumps(goals)
    return {k: _coerce(k, v, inputs[k], name) for k, v in params.items()}


# --------------------------------------------------------------------------- connection


def _normalise_host(host: str) -> str:
    host = host.strip()
    if not host.startswith(("http://", "https://")):
        host = "https://" + host  # as kfp.Client does (with a warning)
    return host.rstrip("/")


def _sa_token_path() -> Path | None:
    path = Path(os.environ.get(SA_TOKEN_ENV) or SA_TOKEN_PATH)
    return path if path.is_file() else None


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _kubeconfig_exists() -> bool:
    paths = os.environ.get("KUBECONFIG", "").split(os.pathsep) + [
        os.path.expanduser("~/.kube/config")
    ]
    return any(p and os.path.isfile(p) for p in paths)


def _reason(exc: BaseException) -> str:
    """One line saying why a connection failed, without URLs' query strings or headers."""
    inner: Any = exc
    for attr in ("reason", "__cause__", "__context__"):
        nxt = getattr(inner, attr, None)
        if isinstance(nxt, BaseException):
            inner = nxt
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, socket.gaierror):
        return "unknown host name"
    if isinstance(inner, TimeoutError | socket.timeout):
        return "timed out"
    text = str(inner).splitlines()[0] if str(inner) else type(inner).__name__
    if "Connection refused" in text:
        return "connection refused"
    return text[:200]


def _unreachable(host: str, exc: BaseException) -> KfedgeError:
    return KfedgeError(
        f"cannot reach Kubeflow Pipelines at {host}: {_reason(exc)} "
        f"(check --host / {ENDPOINT_ENV}, e.g. http://localhost:8080 after "
        "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)"
    )


def _auth_hint() -> str:
    return (
        f"set {TOKEN_ENV} to a bearer token, or run inside a Kubeflow pod with the "
        f"pipelines service-account token ({SA_TOKEN_ENV})"
    )


def _server_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        data = json.loads(body)
        msg = (data.get("message") or data.get("error") or "") if isinstance(data, dict) else ""
    except ValueError:
        msg = "" if "<html" in body.lower() else body
    return " ".join(str(msg).split())[:300]


def _http_error(host: str, status: int, reason: str, body: Any, doing: str) -> KfedgeError:
    msg = _server_message(body)
    tail = f": {msg}" if msg else ""
    if status in (401, 403):
        return KfedgeError(
            f"Kubeflow Pipelines at {host} refused to {doing} (HTTP {status} {reason}){tail}; "
            + _auth_hint()
        )
    return KfedgeError(
        f"Kubeflow Pipelines at {host} failed to {doing} (HTTP {status} {reason}){tail}"
    )


def preflight(host: str, token: str | None = None, timeout: float = 15.0) -> dict[str, Any]:
    """Check that ``host`` serves the KFP v2beta1 API (GET /apis/v2beta1/healthz), quickly.

    kfp.Client retries a failing health check five times, five seconds apart, logging a stack
    trace each time; this check fails at once with one line.

    Args:
        host: The API endpoint (with scheme).
        token: Bearer token to send, if any.
        timeout: Seconds to wait for an answer.

    Returns:
        The health-check JSON (``multi_user``, ``commit_sha``, ...).

    Raises:
        KfedgeError: Unreachable host, an HTTP error, or an answer that is not the KFP API.
    """
    req = urllib.request.Request(host + _HEALTHZ, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            body = resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise KfedgeError(
                f"{host} does not serve the Kubeflow Pipelines API (GET {_HEALTHZ} -> 404); "
                f"pass the KFP API endpoint with --host / {ENDPOINT_ENV}"
            ) from None
        raise _http_error(host, exc.code, exc.reason, exc.read(4096), "answer") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(host, exc) from None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise KfedgeError(
            f"{host} answered GET {_HEALTHZ} with something that is not the Kubeflow Pipelines "
            f"API (a login page?); {_auth_hint()}"
        )
    return data


@contextlib.contextmanager
def _quiet_kfp() -> Iterator[None]:
    """kfp.Client prints links to stdout and logs stack traces; keep stdout for the result."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logging.disable(previous)


def _make_client(host: str | None, namespace: str | None) -> Any:
    """A kfp.Client for ``host`` (None: kfp's in-cluster / kubeconfig discovery)."""
    from kfedge.compat import require

    kfp = require("kfp")
    kwargs: dict[str, Any] = {"host": host}
    if namespace:
        kwargs["namespace"] = namespace
    token = os.environ.get(TOKEN_ENV)
    if token:
        kwargs["existing_token"] = token
    elif host and _sa_token_path() is not None:
        from kfp.client import ServiceAccountTokenVolumeCredentials

        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(str(_sa_token_path()))
    return kfp.Client(**kwargs)


def _call(
    host: str,
    doing: str,
    fn: Any,
    *args: Any,
    passthrough: tuple[type[BaseException], ...] = (),
    **kwargs: Any,
) -> Any:
    """Call a kfp.Client method and turn its failures into one-line KfedgeErrors.

    Exceptions of the ``passthrough`` types are raised as they are (kfp's ``TimeoutError``
    when a run does not finish in time, which the caller words itself).
    """
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        with _quiet_kfp():
            return fn(*args, **kwargs)
    except passthrough:
        raise
    except ApiException as exc:
        if not exc.status:  # a transport error kfp wrapped (e.g. TLS)
            raise _unreachable(host, exc) from None
        raise _http_error(host, exc.status, exc.reason or "", exc.body, doing) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(host, exc) from None
    except KfedgeError:
        raise
    except ValueError as exc:  # kfp's own checks: duplicate names, bad display names
        raise ConfigError(f"Kubeflow Pipelines at {host}: cannot {doing}: {exc}") from None


def _state(run: Any) -> str | None:
    state = getattr(run, "state", None)
    if state is None:
        return None
    return str(getattr(state, "value", state))


# --------------------------------------------------------------------------- submit


def submit(
    pipeline: str | os.PathLike[str] = "edge-optimize-deploy",
    host: str | None = None,
    namespace: str | None = None,
    experiment: str = "kfedge",
    run_name: str | None = None,
    version_name: str | None = None,
    params: dict[str, Any] | None = None,
    wait: bool = True,
    timeout: float = 3600,
    client: Any = None,
    poll_seconds: float = 5.0,
    check: bool = True,
) -> dict[str, Any]:
    """Upload a pipeline to Kubeflow Pipelines and start a run.

    Args:
        pipeline: ``edge-optimize-deploy``, ``edge-optimize``, ``edge-evaluate`` (the compiled
            YAML shipped with kfedge) or the path of a compiled pipeline YAML.
        host: KFP API endpoint; default ``KF_PIPELINES_ENDPOINT``, else kfp's in-cluster /
            kubeconfig discovery.
        namespace: Kubeflow profile namespace (multi-user KFP).
        experiment: Experiment name (created when missing).
        run_name: Run name (default: the pipeline name and the UTC time).
        version_name: Name of the new pipeline version when a pipeline of that name exists
            (default: the pipeline name and the UTC time). The first upload creates the
            pipeline with one version that KFP names after the pipeline.
        params: Run parameters (see :func:`prepare_params`).
        wait: Wait for the run to finish.
        timeout: Seconds to wait at most.
        client: A ready ``kfp.Client`` (or an object with the same methods); default: one
            built from ``host`` / ``namespace`` and the token settings.
        poll_seconds: Seconds between run-state polls while waiting.
        check: When waiting, raise if the run does not end ``SUCCEEDED``.

    Returns:
        ``run_id``, ``run_url``, ``pipeline_id``, ``pipeline_name``, ``version_id``,
        ``version_name``, ``experiment_id``, ``state`` and ``params`` (what was sent).

    Raises:
        ConfigError: Bad parameters, target, techniques or goals (before any network), or no
            KFP endpoint known.
        NotFoundError: Unknown pipeline or target.
        KfedgeError: The server is unreachable or refused a request (one line naming the
            host), the run failed (with ``check``) or did not finish within ``timeout``.
    """
    path = pipeline_path(pipeline)
    spec = load_pipeline_spec(path)
    name = spec["pipelineInfo"]["name"]
    sent = prepare_params(spec, params)

    host = host or os.environ.get(ENDPOINT_ENV) or None
    if host:
        host = _normalise_host(host)
    shown = host or "the in-cluster KFP endpoint"
    if client is None:
        if not host and not _in_cluster() and not _kubeconfig_exists():
            raise ConfigError(
                f"no Kubeflow Pipelines endpoint: pass --host or set {ENDPOINT_ENV} "
                "(e.g. http://localhost:8080 after "
                "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)"
            )
        if host:
            token = os.environ.get(TOKEN_ENV)
            sa = _sa_token_path()
            if not token and sa is not None:
                token = sa.read_text().strip()
            health = preflight(host, token)
            if (
                health.get("multi_user")
                and not namespace
                and not os.path.isfile(POD_NAMESPACE_PATH)
            ):
                raise ConfigError(
                    f"Kubeflow Pipelines at {host} is multi-user: pass --namespace "
                    "(your Kubeflow profile namespace)"
                )
        client = _call(shown, "connect", _make_client, host, namespace)

    now = _dt.datetime.now(_dt.UTC)
    pipeline_id = _call(shown, f"look up pipeline {name}", client.get_pipeline_id, name)
    if pipeline_id is None:
        uploaded = _call(
            shown,
            f"upload pipeline {name}",
            client.upload_pipeline,
            str(path),
            pipeline_name=name,
            description=spec["pipelineInfo"].get("description"),
        )
        pipeline_id = uploaded.pipeline_id
        listed = _call(
            shown,
            f"list the versions of pipeline {name}",
            client.list_pipeline_versions,
            pipeline_id,
            page_size=1,
            sort_by="created_at desc",
        )
        versions = list(getattr(listed, "pipeline_versions", None) or [])
        if not versions:
            raise KfedgeError(
                f"Kubeflow Pipelines at {shown} uploaded pipeline {name} ({pipeline_id}) "
                "but lists no version of it"
            )
        version = versions[0]
    else:
        vname = version_name or f"{name}-{now:%Y%m%d-%H%M%S}"
        version = _call(
            shown,
            f"upload version {vname} of pipeline {name}",
            client.upload_pipeline_version,
            str(path),
            pipeline_version_name=vname,
            pipeline_id=pipeline_id,
        )
    version_id = version.pipeline_version_id
    exp = _call(
        shown,
        f"create experiment {experiment}",
        client.create_experiment,
        experiment,
        namespace=namespace,
    )
    job_name = run_name or f"{name} {now:%Y-%m-%d %H:%M:%S}"
    run = _call(
        shown,
        f"start a run of {name}",
        client.run_pipeline,
        experiment_id=exp.experiment_id,
        job_name=job_name,
        params=sent,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    run_id = run.run_id
    ui = os.environ.get(UI_ENDPOINT_ENV) or host or "/pipeline"
    result: dict[str, Any] = {
        "run_id": run_id,
        "run_url": f"{ui.rstrip('/')}/#/runs/details/{run_id}",
        "pipeline_id": pipeline_id,
        "pipeline_name": name,
        "version_id": version_id,
        "version_name": getattr(version, "display_name", None),
        "experiment_id": exp.experiment_id,
        "state": _state(run),
        "params": sent,
    }
    if not wait:
        return result
    try:
        final = _call(
            shown,
            f"get run {run_id}",
            client.wait_for_run_completion,
            run_id,
            timeout=timeout,
            sleep_duration=poll_seconds,
            passthrough=(TimeoutError,),
        )
    except TimeoutError:
        raise KfedgeError(
            f"run {run_id} did not finish within {timeout:g} s; follow it at {result['run_url']}"
        ) from None
    result["state"] = _state(final)
    if check and (result["state"] or "").upper() != "SUCCEEDED":
        err = getattr(final, "error", None)
        why = getattr(err, "message", None) if err is not None else None
        raise KfedgeError(
            f"run {run_id} ended in state {result['state']}"
            + (f": {' '.join(str(why).split())[:300]}" if why else "")
            + f"; see {result['run_url']}"
        )
    return result
