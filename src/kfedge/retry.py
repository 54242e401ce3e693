"""Retry only what can succeed on retry: transient faults, with exponential backoff and a bound.

A fault is transient when trying again can help: an S3 timeout, a reset connection, a 5xx or
``SlowDown`` from the object store, a Kubernetes API conflict (409), throttling (429), 5xx or
unreachable API server. Everything else (a bad model, bad data, a bad target, failed goals, a
missing bucket or key, bad credentials, any other 4xx) is the input's fault and fails at once:
trying again would give the same answer.

:func:`retry` calls a function until it succeeds, a non-transient error is raised (re-raised at
once), or the attempts are spent; each retry is logged in one line (the error's own message,
which kfedge's errors keep free of secrets). When the attempts are spent on a
:class:`~kfedge.errors.KfedgeError`, the error is raised again with
``(transient: gave up after N attempts)`` at the end of its message, so a user reading it knows
that running again later may work, where a user error says what to fix.

Which exceptions are transient is the caller's call (``transient=``); the default asks the
exception's ``transient`` attribute (:class:`~kfedge.errors.TransientError` has it).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from kfedge.errors import KfedgeError

__all__ = ["ATTEMPTS", "BASE_DELAY_S", "MAX_DELAY_S", "gave_up", "is_transient", "retry"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default bound: the first try and three retries.
ATTEMPTS = 4
#: Default delay before the first retry; it doubles for each further one.
BASE_DELAY_S = 0.5
#: Longest delay between two attempts.
MAX_DELAY_S = 8.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says a retry can succeed (its ``transient`` attribute)."""
    return bool(getattr(exc, "transient", False))


def gave_up(exc: BaseException, attempts: int) -> BaseException:
    """The error to raise once ``attempts`` tries of a transient fault all failed.

    Args:
        exc: The last attempt's error.
        attempts: How many attempts were made.

    Returns:
        For a :class:`~kfedge.errors.KfedgeError`, a new error of the same class whose message
        ends with ``(transient: gave up after N attempts)`` and whose ``attempts`` is N; any
        other exception as it is.
    """
    if not isinstance(exc, KfedgeError):
        return exc
    try:
        new = type(exc)(f"{exc} (transient: gave up after {attempts} attempts)")
    except TypeError:  # a subclass with another constructor: keep it
        return exc
    new.attempts = attempts  # type: ignore[attr-defined]
    return new


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    base_delay: float = BASE_DELAY_S,
    max_delay: float = MAX_DELAY_S,
    transient: Callable[[BaseException], bool] = is_transient,
    what: str = "operation",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient faults with exponential backoff.

    The delay before retry ``k`` (1-based) is ``base_delay * 2**(k-1)``, capped at
    ``max_delay``, with +-20 % jitter so that many clients do not retry in step.

    Args:
        fn: What to call (no arguments; use a lambda or functools.partial).
        attempts: Attempts in all, >= 1 (1: no retry).
        base_delay: Seconds before the first retry.
        max_delay: Longest wait between two attempts.
        transient: Whether an exception is worth retrying (default: its ``transient``
            attribute). Non-transient exceptions propagate at once, unchanged.
        what: What is being done, for the log line (``fetch s3://b/k``).
        sleep: The sleep function (tests pass a fake).

    Returns:
        What ``fn`` returned.

    Raises:
        ValueError: ``attempts`` < 1.
        Exception: A non-transient error at once; a transient one after the last attempt
            (see :func:`gave_up`).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt == attempts:
                final = gave_up(exc, attempts)
                if final is exc:
                    raise
                raise final from None
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            delay = min(max_delay, delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            log.warning(
                "%s failed (attempt %d of %d, transient: %s); retrying in %.1f s",
                what,
                attempt,
                attempts,
                _one_line(exc),
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
