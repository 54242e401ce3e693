"""Recurring runs on Kubeflow Pipelines (``kfedge submit --schedule``, ``kfedge schedules``).

``kfedge submit --schedule CRON`` / ``--interval SECONDS`` creates one;
``kfedge schedules list|pause|resume|delete`` manages them.

A recurring run (the KFP UI's "Recurring run"; a ScheduledWorkflow in the cluster) starts the
uploaded pipeline version on a trigger. kfedge creates it with **max concurrency 1** (a run
never starts while the previous one is still going: two optimizations of one model on the same
edge nodes would disturb each other's latency figures) and **no catch-up** (after a pause or a
backend outage only the latest missed run starts, not one per missed slot).

Triggers, checked here before anything is sent:

* ``cron``: KFP's cron, read by ``github.com/robfig/cron`` ``cron.Parse``
  (kubeflow/pipelines ``backend/src/crd/controller/scheduledworkflow/util/cron_schedule.go``):
  **six fields, seconds first**: ``second minute hour day-of-month month day-of-week``, e.g.
  ``0 0 2 * * *`` every day at 02:00 UTC, or a descriptor (``@daily``, ``@hourly``,
  ``@every 6h``). A standard five-field expression is refused: robfig would read it as seconds
  first without a day of week (``0 2 * * *`` would run at minute 2 of every hour).
* ``interval``: seconds between the starts of consecutive runs.

REST shapes (kubeflow/pipelines ``backend/api/v2beta1/recurring_run.proto``), sent by
``kfp.Client``: ``POST /apis/v2beta1/recurringruns`` with ``trigger.cron_schedule.cron`` or
``trigger.periodic_schedule.interval_second``, ``max_concurrency``, ``no_catchup``, ``mode``
``ENABLE``; ``GET /apis/v2beta1/recurringruns`` (``recurringRuns``, ``next_page_token``);
``POST /apis/v2beta1/recurringruns/{id}:disable`` / ``:enable``; ``DELETE .../{id}``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from kfedge.errors import ConfigError, KfedgeError, NotFoundError

__all__ = [
    "ACTIONS",
    "DESCRIPTORS",
    "check_cron",
    "check_interval",
    "create_recurring_run",
    "list_schedules",
    "schedule_action",
]

#: Named schedules robfig/cron accepts besides ``@every <duration>``.
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: ``kfedge schedules`` actions and the kfp.Client method each calls.
ACTIONS = {
    "pause": "disable_recurring_run",
    "resume": "enable_recurring_run",
    "delete": "delete_recurring_run",
}
_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_NAMES = {
    "month": {
        m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())
    },
    "day of week": {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_EXAMPLE = "e.g. '0 0 2 * * *' (every day at 02:00 UTC), '0 */30 * * * *', '@daily', '@every 6h'"


def _value(text: str, field: str, lo: int, hi: int, expr: str) -> int:
    names = _NAMES.get(field, {})
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ConfigError(
            f"cron {expr!r}: {text!r} is not a number for the {field} field ({lo}-{hi}"
            + (f" or {'/'.join(n.upper() for n in names)}" if names else "")
            + ")"
        )
    n = int(text)
    if not lo <= n <= hi:
        raise ConfigError(f"cron {expr!r}: {n} is outside the {field} field's range {lo}-{hi}")
    return n


def _check_field(part: str, field: str, lo: int, hi: int, expr: str) -> None:
    for item in part.split(","):
        if not item:
            raise ConfigError(f"cron {expr!r}: empty list item in the {field} field")
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) < 1):
            raise ConfigError(
                f"cron {expr!r}: step {step!r} in the {field} field must be a positive number"
            )
        if base in ("*", "?"):
            continue
        first, dash, last = base.partition("-")
        start = _value(first, field, lo, hi, expr)
        if dash:
            end = _value(last, field, lo, hi, expr)
            if end < start:
                raise ConfigError(
                    f"cron {expr!r}: range {base} in the {field} field ends before it starts"
                )


def check_cron(expr: str) -> str:
    """Check a KFP cron expression (six fields, seconds first, or a descriptor).

    Args:
        expr: The expression.

    Returns:
        The expression with its whitespace normalised.

    Raises:
        ConfigError: It is not one robfig/cron ``cron.Parse`` accepts as six fields, or it has
            five (a standard cron, which KFP would read differently); the message shows the
            fix.
    """
    text = " ".join(str(expr).split())
    if text.startswith("@"):
        if text.lower() in DESCRIPTORS:
            return text.lower()
        every, _, duration = text.partition(" ")
        if every.lower() == "@every" and _DURATION.match(duration.replace(" ", "")):
            return f"@every {duration.replace(' ', '')}"
        raise ConfigError(
            f"cron {expr!r}: unknown descriptor; use one of {', '.join(DESCRIPTORS)} or "
            "'@every <duration>' (Go durations: 90s, 15m, 6h, 1h30m)"
        )
    parts = text.split(" ") if text else []
    if len(parts) == 5:
        raise ConfigError(
            f"cron {expr!r} has 5 fields; KFP's cron has 6, seconds first "
            f"(second minute hour day-of-month month day-of-week): put '0 ' in front, "
            f"'0 {text}' ({_EXAMPLE})"
        )
    if len(parts) != 6:
        raise ConfigError(
            f"cron {expr!r} has {len(parts)} fields; KFP's cron has 6, seconds first "
            f"(second minute hour day-of-month month day-of-week), {_EXAMPLE}"
        )
    for part, (field, lo, hi) in zip(parts, _FIELDS, strict=True):
        _check_field(part, field, lo, hi, text)
    return text


def check_interval(seconds: Any) -> int:
    """Check an interval in seconds (a positive whole number).

    Raises:
        ConfigError: Not a whole number >= 1.
    """
    try:
        value = int(str(seconds).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"interval must be a whole number of seconds >= 1, got {seconds!r}")
    return value


def trigger_of(cron: str | None, interval: int | None) -> dict[str, Any]:
    """The checked trigger as ``{"cron": ...}`` or ``{"interval_second": ...}``.

    Raises:
        ConfigError: Both or neither given, or one is invalid.
    """
    if (cron is None) == (interval is None):
        raise ConfigError("a recurring run needs exactly one of a cron schedule or an interval")
    if cron is not None:
        return {"cron": check_cron(cron)}
    return {"interval_second": check_interval(interval)}


def _trigger_text(trigger: Any) -> str:
    cron = getattr(getattr(trigger, "cron_schedule", None), "cron", None)
    if cron:
        return f"cron {cron}"
    every = getattr(getattr(trigger, "periodic_schedule", None), "interval_second", None)
    return f"every {every} s" if every else "?"


def _ui(host: str | None) -> str:
    from kfedge.submit import UI_ENDPOINT_ENV

    return (os.environ.get(UI_ENDPOINT_ENV) or host or "/pipeline").rstrip("/")


def _describe(rr: Any, host: str | None) -> dict[str, Any]:
    status = getattr(rr, "status", None)
    rid = getattr(rr, "recurring_run_id", None)
    return {
        "recurring_run_id": rid,
        "name": getattr(rr, "display_name", None),
        "status": str(getattr(status, "value", status)) if status is not None else None,
        "trigger": _trigger_text(getattr(rr, "trigger", None)),
        "max_concurrency": getattr(rr, "max_concurrency", None),
        "no_catchup": getattr(rr, "no_catchup", None),
        "experiment_id": getattr(rr, "experiment_id", None),
        "url": f"{_ui(host)}/#/recurringrun/details/{rid}",
    }


def create_recurring_run(
    client: Any,
    shown: str,
    host: str | None,
    *,
    experiment_id: str,
    name: str,
    pipeline_id: str,
    version_id: str,
    params: dict[str, Any],
    trigger: dict[str, Any],
) -> dict[str, Any]:
    """Create the recurring run (max concurrency 1, no catch-up, enabled).

    Args:
        client: A ``kfp.Client`` (or the same methods).
        shown: The host as messages name it.
        host: The API endpoint (for the UI link), or None.
        experiment_id: Experiment the runs go to.
        name: Display name of the recurring run.
        pipeline_id: The uploaded pipeline.
        version_id: The pipeline version every run uses.
        params: Run parameters.
        trigger: From :func:`trigger_of`.

    Returns:
        ``recurring_run_id``, ``name``, ``status``, ``trigger``, ``max_concurrency``,
        ``no_catchup``, ``experiment_id``, ``url``.
    """
    from kfedge.submit import _call

    rr = _call(
        shown,
        f"create recurring run {name}",
        client.create_recurring_run,
        experiment_id=experiment_id,
        job_name=name,
        cron_expression=trigger.get("cron"),
        interval_second=trigger.get("interval_second"),
        max_concurrency=1,
        no_catchup=True,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
        enabled=True,
    )
    return _describe(rr, host)


def _client(host: str | None, namespace: str | None, client: Any) -> tuple[Any, str, str | None]:
    from kfedge.submit import ENDPOINT_ENV, _connect, _normalise_host

    host = host or os.environ.get(ENDPOINT_ENV) or None
    if host:
        host = _normalise_host(host)
    shown = host or "the in-cluster KFP endpoint"
    return client or _connect(host, namespace, shown), shown, host


def list_schedules(
    host: str | None = None,
    namespace: str | None = None,
    experiment: str | None = None,
    client: Any = None,
) -> list[dict[str, Any]]:
    """The recurring runs (all pages), optionally of one experiment.

    Args:
        host: KFP API endpoint (default ``KF_PIPELINES_ENDPOINT`` / in-cluster).
        namespace: Kubeflow profile namespace (multi-user KFP).
        experiment: Only those of this experiment (by name).
        client: A ready ``kfp.Client``.

    Returns:
        One dict per recurring run (see :func:`create_recurring_run`), oldest first.
    """
    from kfedge.submit import _call

    client, shown, host = _client(host, namespace, client)
    experiment_id = None
    if experiment:
        exp = _call(
            shown,
            f"look up experiment {experiment}",
            client.get_experiment,
            experiment_name=experiment,
            namespace=namespace,
        )
        experiment_id = exp.experiment_id
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        page = _call(
            shown,
            "list recurring runs",
            client.list_recurring_runs,
            page_token=token,
            page_size=100,
            sort_by="created_at",
            experiment_id=experiment_id,
            namespace=namespace,
        )
        out += [_describe(rr, host) for rr in (getattr(page, "recurring_runs", None) or [])]
        token = getattr(page, "next_page_token", None) or ""
        if not token:
            return out


def schedule_action(
    action: str,
    which: str,
    host: str | None = None,
    namespace: str | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Pause (disable), resume (enable) or delete a recurring run, by ID or by unique name.

    Args:
        action: ``pause``, ``resume`` or ``delete``.
        which: The recurring run's ID, or its name when exactly one has it.
        host: KFP API endpoint.
        namespace: Kubeflow profile namespace.
        client: A ready ``kfp.Client``.

    Returns:
        The recurring run as it is after the action (for ``delete``: as it was).

    Raises:
        ConfigError: Unknown action, or a name that several recurring runs share.
        NotFoundError: No recurring run has that ID or name.
    """
    from kfedge.submit import _call

    if action not in ACTIONS:
        raise ConfigError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    client, shown, host = _client(host, namespace, client)
    known = list_schedules(host, namespace, client=client)
    match = [s for s in known if s["recurring_run_id"] == which] or [
        s for s in known if s["name"] == which
    ]
    if not match:
        raise NotFoundError(
            f"no recurring run with ID or name {which!r} at {shown}"
            + (f" (there are: {', '.join(str(s['name']) for s in known)})" if known else "")
        )
    if len(match) > 1:
        ids = ", ".join(str(s["recurring_run_id"]) for s in match)
        raise ConfigError(f"{len(match)} recurring runs are named {which!r}; give the ID: {ids}")
    (found,) = match
    rid = found["recurring_run_id"]
    _call(shown, f"{action} recurring run {rid}", getattr(client, ACTIONS[action]), rid)
    if action == "delete":
        return {**found, "status": "DELETED"}
    after = _call(shown, f"get recurring run {rid}", client.get_recurring_run, rid)
    result = _describe(after, host)
    want = "DISABLED" if action == "pause" else "ENABLED"
    if result["status"] != want:
        raise KfedgeError(
            f"recurring run {rid} is {result['status']} after {action}, expected {want}"
        )
    return result
