"""Storage for plain paths, ``file://`` URIs and ``s3://bucket/key``: single files and trees.

Local paths are used in place (no copy on fetch). S3 goes through the ``minio`` client of
:mod:`kfedge.s3`, configured only from the environment (``AWS_ENDPOINT_URL`` or
``S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ...; the full list is in
:mod:`kfedge.s3`). URIs are parsed by :mod:`kfedge.uris`.

Writes are atomic: a download or a local copy goes to a hidden temporary sibling and is
renamed into place only when complete and checked (size, MD5 where the ETag is one, and the
SHA-256 kfedge stores with every object it uploads, so multipart objects are checked by content
too); an S3 object only appears when its upload completes, and a directory upload that fails
removes the objects it already wrote. Each S3 request (a stat, a listing, one object's download
or upload) is retried with backoff when the fault is transient (a timeout, a reset connection,
a 5xx, ``SlowDown``: :mod:`kfedge.s3`, :mod:`kfedge.retry`); a missing bucket or key or denied
access fails at once. Credentials never appear in messages, reprs or logs.
``minio://bucket/key`` (the URI KFP gives artifacts in its default store) is read as S3.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kfedge.errors import InvalidInputError, NotFoundError, StorageError, TransientStorageError
from kfedge.fsutil import atomic_path
from kfedge.s3 import S3Config, S3Session, s3_client
from kfedge.uris import is_remote, parse_uri, s3_uri

log = logging.getLogger(__name__)

__all__ = [
    "S3Config",
    "exists",
    "fetch",
    "is_remote",
    "parse_uri",
    "put",
    "s3_client",
]

_CHUNK = 1 << 20
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_RE = re.compile(r"^[0-9a-f]{32}-[0-9]+$")
#: User metadata holding the SHA-256 of an object kfedge uploaded (checked on download).
SHA256_META = "x-amz-meta-kfedge-sha256"


def _basename(key: str, bucket: str) -> str:
    name = key.rstrip("/").rsplit("/", 1)[-1]
    return name or bucket


@contextlib.contextmanager
def _writing(final: Path, doing: str) -> Iterator[Path]:
    """:func:`~kfedge.fsutil.atomic_path` with local I/O errors as one StorageError line."""
    try:
        with atomic_path(final) as tmp:
            yield tmp
    except OSError as exc:
        raise StorageError(f"{doing}: {exc}") from None


# --------------------------------------------------------------------------- local helpers


def _open_source(path: Path) -> BinaryIO:
    """Open a local file for reading (one seam, so tests can inject read failures)."""
    return path.open("rb")


def _copy_local_file(src: str | Path, dst: str | Path) -> None:
    """Copy one file's bytes and mode, checking the size that arrived."""
    src, dst = Path(src), Path(dst)
    expected = src.stat().st_size
    with _open_source(src) as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, _CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
        written = fout.tell()
    if written != expected:
        raise StorageError(f"copy of {src} is incomplete: wrote {written} of {expected} bytes")
    shutil.copymode(src, dst)


def _source_files(root: Path) -> list[tuple[Path, str]]:
    """All files under ``root`` (symlinks followed) as ``(path, posix relative path)``."""
    files: list[tuple[Path, str]] = []
    for dirpath, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath, name)
            if not path.is_file():
                raise InvalidInputError(
                    f"cannot upload {path}: not a regular file (broken link or special file)"
                )
            if not os.access(path, os.R_OK):
                raise InvalidInputError(f"cannot upload {path}: not readable")
            files.append((path, path.relative_to(root).as_posix()))
    return files


# --------------------------------------------------------------------------- fetch


def fetch(uri: str | os.PathLike[str], dest_dir: str | Path) -> Path:
    """Make a file or a directory tree available locally.

    A local path or ``file://`` URI is returned as it is (no copy) once it is known to
    exist. An S3 object is downloaded to ``dest_dir/<basename>``; an S3 prefix (a
    "directory": ``key/`` has objects, or the key ends with ``/``) is downloaded as a tree
    to ``dest_dir/<basename>/``. Downloads go to a temporary sibling first, are checked
    (size; MD5 where the ETag is a plain MD5) and renamed into place, replacing what was
    there; on any failure nothing is left at the destination name.

    Args:
        uri: Plain path, ``file://PATH`` or ``s3://BUCKET/KEY``.
        dest_dir: Folder for downloads (created if needed); unused for local paths.

    Returns:
        The local path of the file or directory.

    Raises:
        NotFoundError: The path, bucket or key does not exist.
        StorageError: The endpoint is unreachable, access is denied, or the transfer failed.
        InvalidInputError: The URI is malformed or unsupported.
    """
    scheme, bucket, key = parse_uri(uri)
    if scheme == "file":
        path = Path(key)
        if not path.exists():
            raise NotFoundError(f"path not found: {path}")
        return path
    s3 = S3Session()
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create download folder {dest}: {exc.strerror}") from None
    final = dest / _basename(key, bucket)
    obj = s3.stat(bucket, key) if key and not key.endswith("/") else None
    if obj is not None:
        s3.retrying(
            f"download {s3_uri(bucket, key)}",
            lambda: _download_file(s3, bucket, key, final, obj.size),
        )
        log.info("fetched %s -> %s (%d bytes)", s3_uri(bucket, key), final, obj.size)
        return final
    prefix = key if not key or key.endswith("/") else key + "/"
    objects = s3.list_files(bucket, prefix)
    if not objects:
        s3.require_bucket(bucket)
        raise NotFoundError(f"no object or prefix {s3_uri(bucket, key)} at endpoint {s3.cfg.url}")
    total = 0
    with _writing(final, f"cannot write {final} while fetching {uri}") as tmp:
        tmp.mkdir()
        for o in objects:
            rel = o.object_name[len(prefix) :]
            parts = [p for p in rel.split("/") if p]
            if not parts or any(p in (".", "..") for p in parts):
                raise StorageError(f"refusing unsafe object key {s3_uri(bucket, o.object_name)}")
            target = tmp.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.retrying(
                f"download {s3_uri(bucket, o.object_name)}",
                functools.partial(
                    _download_file, s3, bucket, o.object_name, target, o.size, etag=o.etag
                ),
            )
            total += o.size
    log.info(
        "fetched %s (%d objects, %d bytes) -> %s",
        s3_uri(bucket, prefix),
        len(objects),
        total,
        final,
    )
    return final


def _stream_to_file(response: Any, fh: BinaryIO, hasher: Any) -> int:
    """Copy an HTTP response body to ``fh``, updating ``hasher``; return bytes written."""
    written = 0
    for chunk in response.stream(_CHUNK, decode_content=False):
        fh.write(chunk)
        hasher.update(chunk)
        written += len(chunk)
    return written


def _download_file(
    s3: S3Session, bucket: str, key: str, final: Path, size: int, etag: str | None = None
) -> None:
    """Download one object to ``final`` through a checked temporary sibling."""
    uri = s3_uri(bucket, key)
    response = None
    try:
        with _writing(final, f"cannot write {final} while fetching {uri}") as tmp:
            with s3.errors(bucket, key):
                response = s3.client.get_object(bucket, key)
                headers = response.headers
                etag = (headers.get("ETag") or etag or "").strip('"').lower()
                length = headers.get("Content-Length")
                expected = int(length) if length is not None else size
                encrypted = headers.get("x-amz-server-side-encryption", "").startswith(
                    "aws:kms"
                ) or bool(headers.get("x-amz-server-side-encryption-customer-algorithm"))
                hasher = _Hashes()
                with open(tmp, "xb") as fh:
                    written = _stream_to_file(response, fh, hasher)
                    fh.flush()
                    os.fsync(fh.fileno())
            if written != expected:
                raise TransientStorageError(
                    f"download of {uri} is incomplete: got {written} of {expected} bytes"
                )
            if _MD5_RE.match(etag) and not encrypted and hasher.hexdigest() != etag:
                raise TransientStorageError(
                    f"download of {uri} is corrupt: MD5 {hasher.hexdigest()} does not match "
                    f"ETag {etag}"
                )
            sha = (headers.get(SHA256_META) or "").strip().lower()
            if sha and hasher.sha256.hexdigest() != sha:
                raise TransientStorageError(
                    f"download of {uri} is corrupt: SHA-256 {hasher.sha256.hexdigest()} does "
                    f"not match the {sha} stored at upload"
                )
    finally:
        if response is not None:
            response.close()
            response.release_conn()


# --------------------------------------------------------------------------- put


def put(local: str | Path, uri: str | os.PathLike[str]) -> str:
    """Store a local file or directory tree at ``uri``.

    A destination ending in ``/`` is a folder: the source's name is appended. To a local
    path or ``file://`` URI the source is copied to a temporary sibling and renamed into
    place (an existing directory there is replaced as a whole). To S3 a file becomes one
    object (it only appears once complete and its ETag is checked against the MD5 of the
    bytes sent); a directory becomes one object per file under the key prefix, every
    source file being checked readable before the first byte is sent, and the objects
    already written are removed again if any upload fails. Objects already under the
    prefix that the new tree does not contain are left alone.

    Args:
        local: The file or directory to store.
        uri: Plain path, ``file://PATH`` or ``s3://BUCKET/KEY``.

    Returns:
        The destination URI (with the source name appended for a folder destination).

    Raises:
        NotFoundError: ``local`` or the bucket does not exist.
        InvalidInputError: Malformed URI, unreadable source, or a file/directory clash.
        StorageError: Endpoint unreachable, access denied, or a transfer failed.
    """
    src = Path(local)
    if not src.exists():
        raise NotFoundError(f"cannot store {src}: no such file or directory")
    scheme, bucket, key = parse_uri(uri)
    text = os.fspath(uri)
    if scheme == "file":
        dest = Path(key)
        if text.endswith("/"):
            dest = dest / src.name
            text = text + src.name
        _put_local(src, dest)
        log.info("stored %s -> %s", src, dest)
        return text
    if not key or key.endswith("/"):
        key += src.name
    if src.is_dir():
        _put_s3_tree(src, bucket, key)
    else:
        s3 = S3Session()
        s3.require_bucket(bucket, for_write=True)  # SeaweedFS would create it on PUT
        s3.retrying(f"upload {s3_uri(bucket, key)}", lambda: _put_s3_file(s3, src, bucket, key))
    log.info("stored %s -> %s", src, s3_uri(bucket, key))
    return s3_uri(bucket, key)


def _put_local(src: Path, dest: Path) -> None:
    if dest.exists() and src.resolve() == dest.resolve():
        return
    if src.is_dir() and dest.resolve().is_relative_to(src.resolve()):
        raise InvalidInputError(f"cannot copy directory {src} into itself ({dest})")
    if dest.is_dir() and not src.is_dir():
        raise InvalidInputError(
            f"cannot store file {src} at {dest}: a directory is there "
            "(end the destination with '/' to copy into it)"
        )
    if dest.exists() and not dest.is_dir() and src.is_dir():
        raise InvalidInputError(f"cannot store directory {src} at {dest}: a file is there")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {dest.parent}: {exc.strerror}") from None
    with _writing(dest, f"cannot copy {src} to {dest}") as tmp:
        if src.is_dir():
            shutil.copytree(src, tmp, copy_function=_copy_local_file)
        else:
            _copy_local_file(src, tmp)


class _Hashes:
    """MD5 (what plain ETags are) and SHA-256 (what kfedge stores) of one stream."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)

    def hexdigest(self) -> str:
        return self.md5.hexdigest()


def _file_sha256(src: Path) -> str:
    h = hashlib.sha256()
    with _open_source(src) as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _HashingReader:
    """A file wrapper that hashes and counts what is read through it.

    With ``part_size`` it also keeps the MD5 of every part, for the ETag S3 gives a multipart
    upload (the MD5 of the parts' MD5s, ``-`` the part count).
    """

    def __init__(self, fh: BinaryIO, part_size: int = 0) -> None:
        self._fh = fh
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.count = 0
        self._part_size = part_size
        self._part = hashlib.md5(usedforsecurity=False)
        self._in_part = 0
        self._parts: list[bytes] = []

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.md5.update(data)
        self.count += len(data)
        view = memoryview(data)
        while self._part_size and len(view):
            take = min(len(view), self._part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self._part_size:
                self._parts.append(self._part.digest())
                self._part, self._in_part = hashlib.md5(usedforsecurity=False), 0
        return data

    def multipart_etag(self) -> str:
        """The ETag of the bytes read so far uploaded in parts of ``part_size``."""
        parts = self._parts + ([self._part.digest()] if self._in_part else [])
        return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def _put_s3_file(s3: S3Session, src: Path, bucket: str, key: str) -> None:
    uri = s3_uri(bucket, key)
    size = src.stat().st_size
    from minio.helpers import get_part_info

    part_size = get_part_info(size, 0)[0]  # what put_object splits a multipart upload into
    try:
        meta = {SHA256_META: _file_sha256(src)}
        with _open_source(src) as fh:
            reader = _HashingReader(fh, part_size)
            with s3.errors(bucket, key):
                result = s3.client.put_object(bucket, key, reader, size, metadata=meta)
    except OSError as exc:
        raise StorageError(f"cannot read {src} while storing it at {uri}: {exc}") from None
    etag = (result.etag or "").strip('"').lower()
    if (
        reader.count != size
        or (_MD5_RE.match(etag) and etag != reader.md5.hexdigest())
        or (_MULTIPART_RE.match(etag) and etag != reader.multipart_etag())
    ):
        with contextlib.suppress(Exception), s3.errors(bucket, key):
            s3.client.remove_object(bucket, key)
        raise TransientStorageError(
            f"upload of {src} to {uri} did not verify (sent {reader.count} of {size} bytes, "
            f"ETag {etag or 'none'}); the object was removed"
        )


def _put_s3_tree(src: Path, bucket: str, prefix: str) -> None:
    files = _source_files(src)
    if not files:
        raise InvalidInputError(f"nothing to store: {src} is an empty directory")
    s3 = S3Session()
    s3.require_bucket(bucket, for_write=True)
    base = prefix.rstrip("/") + "/"
    done: list[str] = []
    try:
        for path, rel in files:
            s3.retrying(
                f"upload {s3_uri(bucket, base + rel)}",
                functools.partial(_put_s3_file, s3, path, bucket, base + rel),
            )
            done.append(base + rel)
    except BaseException as exc:
        removed = _rollback(s3, bucket, done)
        if isinstance(exc, StorageError | InvalidInputError | NotFoundError):
            raise type(exc)(
                f"{exc}; upload of {src} to {s3_uri(bucket, base)} rolled back "
                f"({removed} of {len(done)} objects removed)"
            ) from None
        raise


def _rollback(s3: S3Session, bucket: str, keys: list[str]) -> int:
    removed = 0
    for key in keys:
        try:
            s3.client.remove_object(bucket, key)
            removed += 1
        except Exception:  # best effort: report the count, keep the first error
            log.warning("could not remove %s after a failed upload", s3_uri(bucket, key))
    return removed


# --------------------------------------------------------------------------- exists


def exists(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names an existing file, directory, object or non-empty prefix.

    Args:
        uri: Plain path, ``file://PATH`` or ``s3://BUCKET/KEY`` (``s3://BUCKET`` checks
            the bucket).

    Returns:
        True when it exists; False for a missing path, key or bucket.

    Raises:
        StorageError: The endpoint is unreachable or access is denied.
        InvalidInputError: The URI is malformed or unsupported.
    """
    scheme, bucket, key = parse_uri(uri)
    if scheme == "file":
        return Path(key).exists()
    s3 = S3Session()
    if not key:
        return s3.bucket_exists(bucket)
    try:
        if not key.endswith("/") and s3.stat(bucket, key) is not None:
            return True
        prefix = key if key.endswith("/") else key + "/"
        return bool(s3.list_files(bucket, prefix))
    except NotFoundError:
        return False
