"""Storage URIs: the one place a URI is split into its scheme, bucket and path.

* A plain path or ``file://PATH`` is local.
* ``s3://BUCKET/KEY`` is object storage; ``minio://BUCKET/KEY`` (what KFP's default artifact
  store gives artifacts) is read as the same.
* What KServe's storage initializer fetches (``s3``, ``gs``, ``pvc``, ``http(s)``, ...) is
  checked by :func:`kserve_storage_uri`.
* A service endpoint (``http(s)://HOST[:PORT]`` or ``HOST[:PORT]``, e.g. the S3 endpoint) is
  split by :func:`parse_endpoint`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kfedge.errors import ConfigError, InvalidInputError

__all__ = [
    "KSERVE_STORAGE_SCHEMES",
    "SUPPORTED",
    "is_remote",
    "kserve_storage_uri",
    "local_path",
    "parse_endpoint",
    "parse_uri",
    "s3_uri",
    "scheme",
]

SUPPORTED = "plain paths, file://PATH and s3://BUCKET/KEY (minio://BUCKET/KEY as an alias)"
#: Storage URI schemes KServe's storage initializer fetches.
KSERVE_STORAGE_SCHEMES = ("s3", "gs", "pvc", "http", "https", "hdfs", "webhdfs", "oci", "hf")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_:]{1,61}[A-Za-z0-9]$")


def scheme(uri: str | os.PathLike[str]) -> str:
    """The lower-case scheme of ``uri`` (``s3``, ``file``, ...), or ``""`` for a plain path."""
    match = _SCHEME_RE.match(os.fspath(uri).strip())
    return match.group(1).lower() if match else ""


def parse_uri(uri: str | os.PathLike[str]) -> tuple[str, str, str]:
    """Split a storage URI into ``(scheme, bucket, path_or_key)``.

    Args:
        uri: A plain path, ``file://PATH``, ``s3://BUCKET/KEY`` or ``minio://BUCKET/KEY``.

    Returns:
        ``("file", "", path)`` for local paths (``~`` expanded in plain paths), ``("s3",
        bucket, key)`` for S3 (the key has no leading slash and may be empty for a whole
        bucket; a trailing slash is kept).

    Raises:
        InvalidInputError: Empty URI, unsupported scheme, or a malformed bucket or key.
    """
    text = os.fspath(uri).strip()
    if not text:
        raise InvalidInputError(f"empty storage URI; expected {SUPPORTED}")
    match = _SCHEME_RE.match(text)
    if match is None:
        return "file", "", os.path.expanduser(text)
    kind = match.group(1).lower()
    if kind == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInputError(
                f"file URI {text!r} names host {parts.netloc!r}; expected file:///ABSOLUTE/PATH"
            )
        path = unquote(parts.path)
        if not path:
            raise InvalidInputError(f"file URI {text!r} has no path; expected file:///PATH")
        return "file", "", path
    if kind in ("s3", "minio"):
        bucket, _, key = text[match.end() :].partition("/")
        key = key.lstrip("/")
        if not bucket:
            raise InvalidInputError(f"S3 URI {text!r} has no bucket; expected s3://BUCKET/KEY")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise InvalidInputError(
                f"S3 URI {text!r}: {bucket!r} is not a valid bucket name "
                "(3-63 characters: letters, digits, '.', '-')"
            )
        if any(seg in (".", "..") for seg in key.split("/")):
            raise InvalidInputError(f"S3 URI {text!r}: key segments '.' and '..' are not supported")
        return "s3", bucket, key
    raise InvalidInputError(f"unsupported storage scheme {kind!r} in {text!r}; use {SUPPORTED}")


def is_remote(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names object storage (S3) rather than a local path.

    Args:
        uri: Any URI :func:`parse_uri` accepts.

    Returns:
        True for ``s3://`` (and ``minio://``) URIs.

    Raises:
        InvalidInputError: The URI is malformed or unsupported.
    """
    return parse_uri(uri)[0] == "s3"


def local_path(uri: str | os.PathLike[str]) -> Path:
    """The local path a plain path or ``file://`` URI names.

    Args:
        uri: A plain path or ``file://PATH``.

    Returns:
        The path (it need not exist).

    Raises:
        InvalidInputError: ``uri`` is remote (fetch it with :func:`kfedge.storage.fetch`),
            malformed or unsupported.
    """
    kind, _, path = parse_uri(uri)
    if kind != "file":
        raise InvalidInputError(
            f"{os.fspath(uri)!r} is not a local path; fetch it first (kfedge.storage.fetch)"
        )
    return Path(path)


def s3_uri(bucket: str, key: str) -> str:
    """``s3://BUCKET/KEY``."""
    return f"s3://{bucket}/{key}"


def kserve_storage_uri(uri: str) -> str:
    """Check that KServe's storage initializer can fetch ``uri``; return it as KServe takes it.

    Args:
        uri: E.g. ``s3://bucket/prefix``; ``minio://bucket/key`` (KFP's default artifact
            store) becomes ``s3://bucket/key``, which KServe reads from the same store.

    Returns:
        The URI with a lower-case scheme.

    Raises:
        ConfigError: No scheme KServe fetches, or nothing after the scheme.
    """
    kind = scheme(uri)
    rest = uri.strip()[len(kind) + 3 :] if kind else ""
    if kind == "minio":
        kind = "s3"
    if kind not in KSERVE_STORAGE_SCHEMES or not rest.strip("/"):
        raise ConfigError(
            "a cluster deployment needs a storage URI KServe's storage initializer can fetch "
            f"({', '.join(s + '://' for s in KSERVE_STORAGE_SCHEMES)}); got {uri!r}"
        )
    return f"{kind}://{rest}"


def parse_endpoint(text: str, name: str) -> tuple[str, str]:
    """Split a service endpoint into ``(scheme, host[:port])``.

    Args:
        text: ``http(s)://HOST[:PORT]`` or ``HOST[:PORT]`` (no path, no credentials).
        name: Where it came from, for messages (e.g. ``AWS_ENDPOINT_URL``).

    Returns:
        ``("http" | "https", "host:port")``, or ``("", "host:port")`` without a scheme.

    Raises:
        ConfigError: Another scheme, a path, or credentials in it (which the message does not
            repeat).
    """
    text = text.strip()
    if "@" in text:
        raise ConfigError(
            f"{name} must not carry credentials; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        )
    if "://" not in text:
        host = text.rstrip("/")
        if not host or "/" in host:
            raise ConfigError(f"{name}={text!r} is not HOST[:PORT]")
        return "", host
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}={text!r} is not an endpoint; expected http(s)://HOST[:PORT]")
    if parts.path.strip("/") or parts.query:
        raise ConfigError(f"{name}={text!r} has a path; expected http(s)://HOST[:PORT] only")
    return parts.scheme, parts.netloc
