"""kfedge.retry: transient faults are retried with capped exponential backoff, the rest at once."""

from __future__ import annotations

import logging

import pytest

from kfedge.errors import (
    DataError,
    KfedgeError,
    StorageError,
    TransientError,
    TransientStorageError,
)
from kfedge.retry import gave_up, is_transient, retry


class _Flaky:
    """Fails with ``errors`` in turn, then returns ``"ok"``; counts calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_faults_are_retried_until_success(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    fn = _Flaky(TransientStorageError("reset"), TransientStorageError("reset again"))
    caplog.set_level(logging.WARNING, logger="kfedge.retry")
    assert retry(fn, attempts=4, base_delay=1.0, max_delay=10, what="fetch x", sleep=sleeps.append)
    assert fn.calls == 3
    assert len(sleeps) == 2
    assert 0.8 <= sleeps[0] <= 1.2 and 1.6 <= sleeps[1] <= 2.4  # doubled, +-20 % jitter
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("fetch x failed (attempt 1 of 4, transient: reset); retrying in")


def test_delays_are_capped() -> None:
    sleeps: list[float] = []
    fn = _Flaky(*[TransientError("busy")] * 6)
    retry(fn, attempts=7, base_delay=1.0, max_delay=3.0, sleep=sleeps.append)
    assert max(sleeps) <= 3.0 and sleeps[-1] == pytest.approx(3.0, rel=0.21)


@pytest.mark.parametrize(
    "error",
    [DataError("labels out of range"), StorageError("access denied"), KeyError("x")],
)
def test_user_errors_fail_at_once(error: Exception) -> None:
    sleeps: list[float] = []
    fn = _Flaky(error)
    with pytest.raises(type(error)) as err:
        retry(fn, attempts=5, sleep=sleeps.append)
    assert err.value is error  # unchanged
    assert fn.calls == 1 and sleeps == []
    assert not is_transient(error)


def test_giving_up_says_it_was_transient() -> None:
    fn = _Flaky(*[TransientStorageError("S3 endpoint timed out")] * 3)
    with pytest.raises(TransientStorageError) as err:
        retry(fn, attempts=3, sleep=lambda _s: None)
    assert fn.calls == 3
    assert str(err.value) == "S3 endpoint timed out (transient: gave up after 3 attempts)"
    assert err.value.transient and err.value.attempts == 3  # type: ignore[attr-defined]
    assert isinstance(err.value, StorageError)  # callers catching StorageError still do


def test_custom_predicate_and_foreign_exceptions() -> None:
    fn = _Flaky(ConnectionResetError("peer"), ConnectionResetError("peer"))
    out = retry(
        fn,
        attempts=3,
        transient=lambda e: isinstance(e, ConnectionError),
        sleep=lambda _s: None,
    )
    assert out == "ok" and fn.calls == 3
    exc = ConnectionResetError("x")
    assert gave_up(exc, 3) is exc  # not a kfedge error: raised as it is
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        retry(fn, attempts=0)


def test_error_classes_say_which_it_was() -> None:
    assert TransientStorageError("x").transient and issubclass(TransientStorageError, StorageError)
    assert not StorageError("x").transient and not DataError("x").transient
    assert not KfedgeError("x").transient
