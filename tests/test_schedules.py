"""Recurring runs: ``kfedge submit --schedule`` / ``--interval`` and ``kfedge schedules``.

The cron check follows robfig/cron ``cron.Parse`` as KFP's ScheduledWorkflow controller calls it
(kubeflow/pipelines ``backend/src/crd/controller/scheduledworkflow/util/cron_schedule.go``).
The recurring-run calls go through the real ``kfp.Client`` to the FAKE KFP API of
``fake_apis.FakeKfpApi``, which answers ``/apis/v2beta1/recurringruns`` with the shapes of
``backend/api/v2beta1/recurring_run.proto`` (``recurringRuns``, ``next_page_token``, ``:enable``
/ ``:disable``, gateway error bodies). Nothing here runs on a real cluster.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_apis import fake_kfp_fixture  # noqa: F401 (registers the fake_kfp fixture)

from kfedge.cli import main
from kfedge.errors import ConfigError, NotFoundError
from kfedge.schedules import check_cron, check_interval, list_schedules, schedule_action
from kfedge.submit import submit


class NoNetworkClient:
    """Fails the test if anything talks to the server."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"contacted the server ({name}) before refusing bad input")


# ----------------------------------------------------------------------------- cron check
@pytest.mark.parametrize(
    "expr",
    [
        "0 0 2 * * *",
        "0 */30 * * * *",
        "0 0 6 * * MON-FRI",
        "30 15 1,13 1-31/2 JAN,jul ?",
        "0 0 0 1 * 0",
        "@daily",
        "@HOURLY",
        "@every 6h",
        "@every 1h30m",
    ],
)
def test_kfp_cron_expressions_are_accepted(expr: str) -> None:
    assert check_cron(f"  {expr} ") in (" ".join(expr.split()), expr.lower())


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 2 * * *", r"has 5 fields; KFP's cron has 6, seconds first.*'0 0 2 \* \* \*'"),
        ("* * *", "has 3 fields"),
        ("", "has 0 fields"),
        ("60 0 2 * * *", "60 is outside the second field's range 0-59"),
        ("0 0 24 * * *", "24 is outside the hour field's range 0-23"),
        ("0 0 0 0 * *", "0 is outside the day of month field's range 1-31"),
        ("0 0 0 * 13 *", "13 is outside the month field's range 1-12"),
        ("0 0 0 * * 7", "7 is outside the day of week field's range 0-6"),
        ("0 0 0 * * FUN", r"'FUN' is not a number for the day of week field \(0-6 or SUN/"),
        ("0 */0 * * * *", "step '0' in the minute field must be a positive number"),
        ("0 30-10 * * * *", "range 30-10 in the minute field ends before it starts"),
        ("0 1 2 * * * *", "has 7 fields"),
        ("0 1,,2 * * * *", "empty list item in the minute field"),
        ("@fortnightly", "unknown descriptor"),
        ("@every soon", "unknown descriptor"),
    ],
)
def test_bad_cron_is_refused_in_one_line(expr: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        check_cron(expr)
    assert "\n" not in str(err.value)


def test_interval_must_be_positive_whole_seconds() -> None:
    assert check_interval("3600") == 3600
    for bad in (0, -5, "1.5", "hourly"):
        with pytest.raises(ConfigError, match="whole number of seconds >= 1"):
            check_interval(bad)


def test_bad_schedule_refused_before_any_network() -> None:
    for kw in ({"schedule": "0 2 * * *"}, {"interval": 0}, {"schedule": "@daily", "interval": 60}):
        with pytest.raises(ConfigError):
            submit(client=NoNetworkClient(), params={}, **kw)


# --------------------------------------------------------------------- against the fake API
def test_fake_kfp_schedule_creates_one_recurring_run_with_concurrency_1_no_catchup(fake_kfp):  # noqa: ANN001
    api, host = fake_kfp
    res = submit(
        host=host,
        experiment="nightly",
        run_name="nightly arm64",
        params={"target": "cpu-arm64"},
        schedule="0 0 2 * * *",
    )
    calls = api.calls()
    assert calls[-1] == "POST /apis/v2beta1/recurringruns"
    assert "POST /apis/v2beta1/runs" not in calls and not api.runs  # no one-off run
    body = api.requests[-1].json
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True
    assert body["mode"] == "ENABLE" and body["display_name"] == "nightly arm64"
    assert body["experiment_id"] == res["experiment_id"]
    assert body["pipeline_version_reference"] == {
        "pipeline_id": res["pipeline_id"],
        "pipeline_version_id": res["version_id"],
    }
    assert body["runtime_config"]["parameters"]["target"] == "cpu-arm64"
    rr = res["recurring_run"]
    assert rr["status"] == "ENABLED" and rr["trigger"] == "cron 0 0 2 * * *"
    assert rr["url"] == f"{host}/#/recurringrun/details/{rr['recurring_run_id']}"
    assert "run_id" not in res and res["params"] == body["runtime_config"]["parameters"]


def test_fake_kfp_interval_trigger(fake_kfp):  # noqa: ANN001
    api, host = fake_kfp
    res = submit(host=host, params={}, interval=6 * 3600)
    body = api.requests[-1].json
    assert int(body["trigger"]["periodic_schedule"]["interval_second"]) == 21600
    assert "cron_schedule" not in body["trigger"]
    assert res["recurring_run"]["trigger"] == "every 21600 s"
    assert res["recurring_run"]["name"].startswith("edge-optimize-deploy (21600)")


def test_fake_kfp_list_pause_resume_delete(fake_kfp):  # noqa: ANN001
    api, host = fake_kfp
    a = submit(host=host, run_name="a", params={}, schedule="@daily")["recurring_run"]
    b = submit(host=host, run_name="b", params={}, interval=3600)["recurring_run"]
    listed = list_schedules(host)
    assert [s["name"] for s in listed] == ["a", "b"]
    assert all(s["status"] == "ENABLED" and int(s["max_concurrency"]) == 1 for s in listed)
    assert all(s["no_catchup"] is True for s in listed)
    paused = schedule_action("pause", "a", host)  # by name
    assert paused["status"] == "DISABLED" and api.recurring[a["recurring_run_id"]]["status"] == (
        "DISABLED"
    )
    assert f"POST /apis/v2beta1/recurringruns/{a['recurring_run_id']}:disable" in api.calls()
    assert schedule_action("resume", a["recurring_run_id"], host)["status"] == "ENABLED"
    gone = schedule_action("delete", b["recurring_run_id"], host)
    assert gone["status"] == "DELETED" and b["recurring_run_id"] not in api.recurring
    assert [s["name"] for s in list_schedules(host)] == ["a"]
    with pytest.raises(NotFoundError, match="no recurring run with ID or name 'zzz'.*there are: a"):
        schedule_action("pause", "zzz", host)


def test_fake_kfp_list_reads_every_page_and_filters_by_experiment(fake_kfp):  # noqa: ANN001
    api, host = fake_kfp
    for i in range(3):
        submit(host=host, experiment=f"e{i % 2}", run_name=f"r{i}", params={}, schedule="@hourly")
    api.page_size_cap = 1
    assert [s["name"] for s in list_schedules(host)] == ["r0", "r1", "r2"]
    assert [s["name"] for s in list_schedules(host, experiment="e0")] == ["r0", "r2"]
    lists = [
        r for r in api.requests if r.path == "/apis/v2beta1/recurringruns" and r.method == "GET"
    ]
    assert lists[0].query["page_size"] == "100"


def test_fake_kfp_same_name_twice_asks_for_the_id(fake_kfp):  # noqa: ANN001
    _api, host = fake_kfp
    ids = [submit(host=host, run_name="twin", params={}, schedule="@daily") for _ in range(2)]
    with pytest.raises(ConfigError, match="2 recurring runs are named 'twin'; give the ID"):
        schedule_action("delete", "twin", host)
    assert len(list_schedules(host)) == len(ids)


# ---------------------------------------------------------------------------------- the CLI
def test_cli_submit_schedule_and_schedules_commands(fake_kfp, capsys) -> None:  # noqa: ANN001
    api, host = fake_kfp
    rc = main(["submit", "--host", host, "--run-name", "nightly", "--schedule", "0 0 2 * * *"])
    out = capsys.readouterr().out
    assert rc == 0 and json.loads(out)["recurring_run"]["status"] == "ENABLED"
    assert main(["schedules", "list", "--host", host]) == 0
    line = capsys.readouterr().out.strip()
    (rid,) = list(api.recurring)
    assert line.split() == [rid, "ENABLED", "cron", "0", "0", "2", "*", "*", "*", "nightly"]
    assert main(["schedules", "pause", "nightly", "--host", host]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "DISABLED"
    assert main(["schedules", "list", "--host", host, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "DISABLED"
    assert main(["schedules", "delete", rid, "--host", host]) == 0
    capsys.readouterr()
    assert main(["schedules", "--host", host]) == 0
    assert capsys.readouterr().out.strip() == "no recurring runs"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "--schedule", "0 2 * * *"], "has 5 fields"),
        (["submit", "--schedule", "@daily", "--interval", "60"], "not both"),
        (["submit", "--interval", "0"], "whole number of seconds"),
        (["schedules", "pause"], "needs a recurring run ID or name"),
        (["schedules", "list", "x"], "takes no ID"),
    ],
)
def test_cli_bad_schedule_arguments_exit_2_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
