"""Filesystem helpers every module shares: atomic writes.

A reader never sees a half-written file: content goes to a temporary file in the destination's
directory (same filesystem) and is renamed over the destination with :func:`os.replace`, which is
atomic on POSIX. The temporary file is removed when anything fails.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block ends without error.

    Args:
        path: The final destination; its parent directories are created.

    Yields:
        A writable binary file object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically.

    Args:
        path: Destination file.
        data: The whole content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    return write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any, **dumps: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, sorted keys unless overridden) to ``path`` atomically."""
    opts: dict[str, Any] = {"indent": 2, "sort_keys": True, **dumps}
    return write_text_atomic(path, json.dumps(obj, **opts))


def write_with(path: str | Path, writer: Callable[[BinaryIO], None]) -> Path:
    """Let ``writer`` fill a temporary file that then replaces ``path`` atomically.

    Args:
        path: Destination file.
        writer: Called with the open binary file (e.g. ``lambda fh: np.savez(fh, x=x)``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_file(path) as fh:
        writer(fh)
    return Path(path)
