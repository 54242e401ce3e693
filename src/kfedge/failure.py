"""A failed candidate: a technique or evaluation that raised, recorded instead of ending the run.

One technique's failure must not sink the run: the optimize step writes a *failed candidate*
(``FAILED.json`` in the candidate directory: name, technique, one-line reason) instead of
raising; the evaluate step passes it on as a *failed evaluation* (the same record, an evaluation
JSON with a ``failed`` key) and records its own failure the same way; the benchmark skips it
with its reason; select and the report list it with its reason. In a compiled pipeline on a KFP
backend a failed ParallelFor iteration would fail the whole DAG, which is why the component
itself records the failure and exits cleanly. The run fails only when the baseline fails or no
candidate could be evaluated (:func:`check_usable`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kfedge.errors import ConfigError, InvalidInputError, KfedgeError

#: The file that marks a candidate directory as a failed candidate.
FAILED_FILE = "FAILED.json"
#: The key that marks an evaluation JSON as a failed evaluation.
FAILED_KEY = "failed"
_MAX_REASON = 300


def one_line(exc: BaseException) -> str:
    """The reason of a failure in one line: kfedge's own message, else ``Type: message``.

    Args:
        exc: The exception.

    Returns:
        One line of at most 300 characters.
    """
    text = " ".join(str(exc).split()) or "(no message)"
    if not isinstance(exc, KfedgeError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


@dataclass(frozen=True)
class Failure:
    """A candidate that could not be made or evaluated.

    Attributes:
        name: The candidate's name (as the technique would have named it).
        technique: The technique (chain) that was applied.
        reason: What went wrong, in one line.
        stage: ``optimize`` or ``evaluate``.
    """

    name: str
    technique: str
    reason: str
    stage: str = "optimize"

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``failed`` holds the reason)."""
        d = asdict(self)
        d[FAILED_KEY] = d.pop("reason")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        """Read a record written by :meth:`to_dict`."""
        return cls(
            name=str(data.get("name", "")),
            technique=str(data.get("technique", "")),
            reason=str(data[FAILED_KEY]),
            stage=str(data.get("stage", "optimize")),
        )

    @property
    def text(self) -> str:
        """``name: failed in <stage>: <reason>`` for reports and logs."""
        return f"{self.name}: failed in {self.stage}: {self.reason}"

    def kfp_metadata(self) -> dict[str, Any]:
        """Metadata for the step's output artifact (shown in the KFP UI)."""
        return {"name": self.name, "technique": self.technique, "failed": self.reason}

    def kfp_metrics(self) -> dict[str, float]:
        """No metrics: nothing was measured."""
        return {}


def write_failed_candidate(failure: Failure, directory: str | Path) -> Path:
    """Mark ``directory`` as a failed candidate (written atomically, directory created)."""
    from kfedge.fsutil import write_json_atomic

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(d / FAILED_FILE, failure.to_dict())


def read_failed_candidate(path: str | Path) -> Failure | None:
    """The failure recorded in a candidate directory, or None for an ordinary candidate."""
    f = Path(path) / FAILED_FILE
    if not f.is_file():
        return None
    return Failure.from_dict(json.loads(f.read_text()))


def as_failure(data: Any) -> Failure | None:
    """The failure an evaluation record holds, or None for an ordinary evaluation."""
    if isinstance(data, Failure):
        return data
    if isinstance(data, dict) and data.get(FAILED_KEY):
        return Failure.from_dict(data)
    return None


def read_evaluation_file(path: str | Path) -> Failure | None:
    """The failure recorded in an evaluation JSON file, or None when it is an evaluation."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None  # load_evaluation reports it in its own words
    return as_failure(data)


def check_usable(baseline: str, failures: Iterable[Failure], evaluated: int) -> None:
    """Raise when the run cannot go on: the baseline failed, or no candidate was evaluated.

    Args:
        baseline: The baseline's name.
        failures: The failed candidates.
        evaluated: How many candidates other than the baseline were evaluated.

    Raises:
        InvalidInputError: The baseline failed, or every other candidate did.
    """
    failed = list(failures)
    for f in failed:
        if f.name == baseline:
            raise InvalidInputError(f"the baseline failed: {f.text}")
    if failed and evaluated == 0:
        raise InvalidInputError(
            "no candidate could be evaluated: " + "; ".join(f.text for f in failed)
        )


def isolated(step: Callable[[], str], candidate: Any, name: str, technique: str, stage: str) -> str:
    """Run a loop step that writes a candidate; a step that raises writes a failed candidate.

    Args:
        step: The step (returns the candidate's name).
        candidate: Its output artifact (``.path``, ``.metadata``) or directory.
        name: The candidate's name should the step fail.
        technique: What the step applied (for the record).
        stage: ``optimize``, ``import`` or ``export``.

    Returns:
        The candidate's name (``name`` when the step failed).

    Raises:
        ConfigError: A configuration error (an unknown technique, bad parameters) is the
            caller's, not the technique's, and fails the step as before.
    """
    import shutil
    import sys

    from kfedge.candidate import artifact_parts

    try:
        return step()
    except ConfigError:
        raise
    except Exception as exc:
        out, meta = artifact_parts(candidate)
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)  # no half-written model next to the record
        failure = Failure(name=name, technique=technique, reason=one_line(exc), stage=stage)
        write_failed_candidate(failure, out)
        if meta is not None:
            meta.update(failure.kfp_metadata())
        print(f"[kfedge] {failure.text}; the run goes on without it", file=sys.stderr)
        return failure.name


def pass_on(source: str | Path, candidate: Any) -> str | None:
    """Copy a failed candidate ``source`` to ``candidate`` (a later step of the same loop).

    Returns:
        Its name, or None when ``source`` is not a failed candidate.
    """
    from kfedge.candidate import artifact_parts

    src = Path(source)
    failure = read_failed_candidate(src) if src.is_dir() else None
    if failure is None:
        return None
    out, meta = artifact_parts(candidate)
    write_failed_candidate(failure, out)
    if meta is not None:
        meta.update(failure.kfp_metadata())
    return failure.name
