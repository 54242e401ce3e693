"""Submit a compiled kfedge pipeline to Kubeflow Pipelines (``kfedge submit``).

Everything that can be checked locally is checked before the server is contacted (the pipeline
file and its parameters: :mod:`kfedge.pipeline_params`; a schedule: :mod:`kfedge.schedules`).
Then the pipeline is uploaded through :class:`kfp.Client` (a new version when a pipeline of that
name exists), the experiment is created or reused, and a run is started and, by default, waited
for; or, with a cron schedule or an interval, a recurring run is created (max concurrency 1, no
catch-up) that starts the uploaded version on its trigger.

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

from kfedge.errors import ConfigError, KfedgeError
from kfedge.pipeline_params import (
    BUILTIN_PIPELINES,
    LIST_PARAMS,
    load_pipeline_spec,
    parse_params,
    pipeline_path,
    prepare_params,
)

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

#: Environment variable holding a bearer token for the KFP API (kfp's ``existing_token``).
TOKEN_ENV = "KF_PIPELINES_TOKEN"
ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
UI_ENDPOINT_ENV = "KF_PIPELINES_UI_ENDPOINT"
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

_HEALTHZ = "/apis/v2beta1/healthz"

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
    schedule: str | None = None,
    interval: int | None = None,
) -> dict[str, Any]:
    """Upload a pipeline to Kubeflow Pipelines and start a run, or a recurring run.

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
        schedule: A KFP cron expression (six fields, seconds first, or ``@daily`` ...): create
            a recurring run instead of one run (see :mod:`kfedge.schedules`); never waited for.
        interval: Seconds between runs: a recurring run on a period instead.

    Returns:
        ``run_id``, ``run_url``, ``pipeline_id``, ``pipeline_name``, ``version_id``,
        ``version_name``, ``experiment_id``, ``state`` and ``params`` (what was sent); for a
        recurring run, ``recurring_run`` (its ID, name, status, trigger, max concurrency,
        no catch-up, UI URL) in place of ``run_id``, ``run_url`` and ``state``.

    Raises:
        ConfigError: Bad parameters, target, techniques, goals or schedule (before any
            network), or no KFP endpoint known.
        NotFoundError: Unknown pipeline or target.
        KfedgeError: The server is unreachable or refused a request (one line naming the
            host), the run failed (with ``check``) or did not finish within ``timeout``.
    """
    path = pipeline_path(pipeline)
    spec = load_pipeline_spec(path)
    name = spec["pipelineInfo"]["name"]
    sent = prepare_params(spec, params)
    trigger = None
    if schedule is not None or interval is not None:
        from kfedge.schedules import trigger_of

        trigger = trigger_of(schedule, interval)

    host = host or os.environ.get(ENDPOINT_ENV) or None
    if host:
        host = _normalise_host(host)
    shown = host or "the in-cluster KFP endpoint"
    if client is None:
        client = _connect(host, namespace, shown)
    now = _dt.datetime.now(_dt.UTC)
    pipeline_id, version = _upload(
        client, shown, path, spec, version_name or "", now, namespace=namespace
    )
    exp = _call(
        shown,
        f"create experiment {experiment}",
        client.create_experiment,
        experiment,
        namespace=namespace,
    )
    base = {
        "pipeline_id": pipeline_id,
        "pipeline_name": name,
        "version_id": version.pipeline_version_id,
        "version_name": getattr(version, "display_name", None),
        "experiment_id": exp.experiment_id,
    }
    if trigger is not None:
        from kfedge.schedules import create_recurring_run

        recurring = create_recurring_run(
            client,
            shown,
            host,
            experiment_id=exp.experiment_id,
            name=run_name or f"{name} ({next(iter(trigger.values()))})",
            pipeline_id=pipeline_id,
            version_id=version.pipeline_version_id,
            params=sent,
            trigger=trigger,
        )
        return {"recurring_run": recurring, **base, "params": sent}
    run = _call(
        shown,
        f"start a run of {name}",
        client.run_pipeline,
        experiment_id=exp.experiment_id,
        job_name=run_name or f"{name} {now:%Y-%m-%d %H:%M:%S}",
        params=sent,
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
    )
    ui = os.environ.get(UI_ENDPOINT_ENV) or host or "/pipeline"
    result: dict[str, Any] = {
        "run_id": run.run_id,
        "run_url": f"{ui.rstrip('/')}/#/runs/details/{run.run_id}",
        **base,
        "state": _state(run),
        "params": sent,
    }
    if wait:
        _wait(client, shown, result, timeout, poll_seconds, check)
    return result


def _connect(host: str | None, namespace: str | None, shown: str) -> Any:
    """A kfp.Client, after a quick health check of ``host`` (when one is given)."""
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
        if health.get("multi_user") and not namespace and not os.path.isfile(POD_NAMESPACE_PATH):
            raise ConfigError(
                f"Kubeflow Pipelines at {host} is multi-user: pass --namespace "
                "(your Kubeflow profile namespace)"
            )
    return _call(shown, "connect", _make_client, host, namespace)


def _pipeline_id(client: Any, name: str, namespace: str | None) -> str | None:
    """The ID of the pipeline named ``name`` in ``namespace`` (None: shared), else None.

    ``kfp.Client.get_pipeline_id`` lists shared pipelines only (it passes no namespace).
    """
    import json as _json

    query = _json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )
    listed = client.list_pipelines(filter=query, namespace=namespace)
    found = list(getattr(listed, "pipelines", None) or [])
    if len(found) > 1:
        raise KfedgeError(f"{len(found)} pipelines are named {name}: rename all but one")
    return found[0].pipeline_id if found else None


def _upload(
    client: Any,
    shown: str,
    path: Path,
    spec: dict[str, Any],
    version_name: str,
    now: _dt.datetime,
    namespace: str | None = None,
) -> tuple[str, Any]:
    """Upload the pipeline (its first version) or a new version of it: ``(id, version)``.

    With a ``namespace`` (a Kubeflow profile) the pipeline is that namespace's own, looked up
    and uploaded there: without one KFP makes a shared pipeline, visible to every profile, and
    a multi-user backend authorizes a shared upload against KFP's own namespace, which a
    profile's user may not write (``backend/src/apiserver/server/pipeline_upload_server.go``:
    the ``namespace`` query parameter; an empty one is a shared pipeline). Versions inherit
    their pipeline's namespace.
    """
    name = spec["pipelineInfo"]["name"]
    pipeline_id = _call(
        shown, f"look up pipeline {name}", _pipeline_id, client, name, namespace or None
    )
    if pipeline_id is not None:
        vname = version_name or f"{name}-{now:%Y%m%d-%H%M%S}"
        version = _call(
            shown,
            f"upload version {vname} of pipeline {name}",
            client.upload_pipeline_version,
            str(path),
            pipeline_version_name=vname,
            pipeline_id=pipeline_id,
        )
        return pipeline_id, version
    uploaded = _call(
        shown,
        f"upload pipeline {name}",
        client.upload_pipeline,
        str(path),
        pipeline_name=name,
        description=spec["pipelineInfo"].get("description"),
        namespace=namespace or None,
    )
    listed = _call(
        shown,
        f"list the versions of pipeline {name}",
        client.list_pipeline_versions,
        uploaded.pipeline_id,
        page_size=1,
        sort_by="created_at desc",
    )
    versions = list(getattr(listed, "pipeline_versions", None) or [])
    if not versions:
        raise KfedgeError(
            f"Kubeflow Pipelines at {shown} uploaded pipeline {name} ({uploaded.pipeline_id}) "
            "but lists no version of it"
        )
    return uploaded.pipeline_id, versions[0]


def _wait(
    client: Any,
    shown: str,
    result: dict[str, Any],
    timeout: float,
    poll_seconds: float,
    check: bool,
) -> None:
    """Wait for the run in ``result`` to finish and record its final state there."""
    run_id = result["run_id"]
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
