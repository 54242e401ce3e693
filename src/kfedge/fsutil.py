"""Filesystem helpers every module shares: atomic writes.

A reader never sees a half-written file: content goes to a temporary file in the destination's
directory (same filesystem) and is renamed over the destination with :func:`os.replace`, which is
atomic on POSIX. The temporary file is removed when anything fails. :func:`atomic_path` does the
same for a whole directory tree (or a file written by a library that wants a path).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
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
    with atomic_path(path) as tmp, open(tmp, "xb") as fh:
        yield fh


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


def remove_path(path: str | Path) -> None:
    """Remove a file, link or directory tree; nothing happens when it does not exist."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _replace_path(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``, swapping out a directory (or any kind a tree replaces)."""
    if (final.is_dir() and not final.is_symlink()) or (tmp.is_dir() and final.exists()):
        old = final.parent / f".tmp-old-{final.name}-{secrets.token_hex(4)}"
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old, final)
            raise
        with contextlib.suppress(OSError):
            remove_path(old)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling that replaces ``path`` when the block ends without error.

    Nothing exists at the yielded path yet: the block creates a file or a directory tree
    there (``open(tmp, "xb")``, ``shutil.copytree(src, tmp)``, ``tmp.mkdir()``). On success
    it is renamed onto ``path``, replacing whatever was there, file or directory, as a
    whole; on any error it is removed and ``path`` is left as it was. Its name ends with
    ``path``'s, so savers that choose a format by the suffix (Keras) write the right one.

    Args:
        path: The final destination; its parent directories are created.

    Yields:
        The temporary path to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{secrets.token_hex(4)}-{path.name}"  # keeps the suffix
    try:
        yield tmp
        _replace_path(tmp, path)
    finally:
        remove_path(tmp)
