"""kfedge.fsutil.atomic_path: a file or a tree replaces the destination whole, or nothing does."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfedge.fsutil import atomic_path


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_replaces_a_tree_by_a_file_and_back(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model"
    with atomic_path(dest) as tmp:
        assert not tmp.exists() and tmp.parent == dest.parent
        tmp.mkdir()
        (tmp / "a.bin").write_bytes(b"a")
    assert (dest / "a.bin").read_bytes() == b"a"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"file")
    assert dest.read_bytes() == b"file"
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "b.bin").write_bytes(b"b")
    assert _names(dest) == ["b.bin"]  # the new tree, nothing left of the old one
    assert _names(dest.parent) == ["model"]  # no temporary siblings left


def test_atomic_path_failure_leaves_the_old_content(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "old.bin").write_bytes(b"old")
    with pytest.raises(OSError, match="injected"), atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "half.bin").write_bytes(b"half")
        raise OSError("injected")
    assert _names(dest) == ["old.bin"]
    assert _names(tmp_path) == ["model"]
