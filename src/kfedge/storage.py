"""Storage for plain paths, ``file://`` URIs and ``s3://bucket/key``: single files and trees.

Local paths are used in place (no copy on fetch). S3 goes through the ``minio`` client,
configured only from the environment, as KFP (a Kubernetes Secret mapped to env vars) and
KServe do:

=======================================  ===================================================
``AWS_ENDPOINT_URL_S3``,                 endpoint, first one set wins; may carry ``http://``
``AWS_ENDPOINT_URL``, ``S3_ENDPOINT``,   or ``https://``
``AWS_S3_ENDPOINT``
``S3_USE_HTTPS``                         ``0``/``1`` when the endpoint has no scheme
                                         (default ``1``)
``S3_VERIFY_SSL``                        ``0`` turns TLS certificate checks off (default ``1``)
``AWS_CA_BUNDLE``                        CA bundle for TLS (else ``SSL_CERT_FILE``, certifi)
``AWS_ACCESS_KEY_ID``,                   credentials (both or neither; optional
``AWS_SECRET_ACCESS_KEY``                ``AWS_SESSION_TOKEN``)
``AWS_REGION``, ``AWS_DEFAULT_REGION``   region (default ``us-east-1``)
``KFEDGE_S3_TIMEOUT``                    read timeout in seconds (default 60); connect is 5 s
=======================================  ===================================================

Writes are atomic: a download or a local copy goes to a hidden temporary sibling and is
renamed into place only when complete and checked (size, and MD5 where the ETag is one);
an S3 object only appears when its upload completes, and a directory upload that fails
removes the objects it already wrote. Credentials never appear in messages, reprs or logs.
``minio://bucket/key`` (the URI KFP gives artifacts in its default store) is read as S3.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from kfedge.compat import require
from kfedge.errors import ConfigError, InvalidInputError, NotFoundError, StorageError

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

#: Environment variables read for the endpoint, in order of precedence.
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT", "AWS_S3_ENDPOINT")
SUPPORTED = "plain paths, file://PATH and s3://BUCKET/KEY (minio://BUCKET/KEY as an alias)"
CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_:]{1,61}[A-Za-z0-9]$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_TMP_TAG = ".kfedge-tmp"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "AllAccessDisabled",
}
_MISSING_CODES = {"NoSuchKey", "NotFound", "ResourceNotFound", "NoSuchObject"}


# --------------------------------------------------------------------------- URIs


def parse_uri(uri: str | os.PathLike[str]) -> tuple[str, str, str]:
    """Split a storage URI into ``(scheme, bucket, path_or_key)``.

    Args:
        uri: A plain path, ``file://PATH``, ``s3://BUCKET/KEY`` or ``minio://BUCKET/KEY``.

    Returns:
        ``("file", "", path)`` for local paths, ``("s3", bucket, key)`` for S3 (the key has
        no leading slash and may be empty for a whole bucket; a trailing slash is kept).

    Raises:
        InvalidInputError: Empty URI, unsupported scheme, or a malformed bucket or key.
    """
    text = os.fspath(uri).strip()
    if not text:
        raise InvalidInputError(f"empty storage URI; expected {SUPPORTED}")
    match = _SCHEME_RE.match(text)
    if match is None:
        return "file", "", os.path.expanduser(text)
    scheme = match.group(1).lower()
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInputError(
                f"file URI {text!r} names host {parts.netloc!r}; expected file:///ABSOLUTE/PATH"
            )
        path = unquote(parts.path)
        if not path:
            raise InvalidInputError(f"file URI {text!r} has no path; expected file:///PATH")
        return "file", "", path
    if scheme in ("s3", "minio"):
        rest = text[match.end() :]
        bucket, _, key = rest.partition("/")
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
    raise InvalidInputError(f"unsupported storage scheme {scheme!r} in {text!r}; use {SUPPORTED}")


def is_remote(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names object storage (S3) rather than a local path.

    Args:
        uri: Any URI :func:`parse_uri` accepts.

    Returns:
        True for ``s3://`` (and ``minio://``) URIs.
    """
    return parse_uri(uri)[0] == "s3"


def _s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _basename(key: str, bucket: str) -> str:
    name = key.rstrip("/").rsplit("/", 1)[-1]
    return name or bucket


# --------------------------------------------------------------------------- config


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; expected 0 or 1")


@dataclass(frozen=True)
class S3Config:
    """S3 connection settings, read from the environment by :meth:`from_env`.

    The repr shows the endpoint only; credentials are never shown.

    Attributes:
        endpoint: ``host[:port]`` as the minio client takes it.
        secure: Use HTTPS.
        verify: Check TLS certificates.
        region: Signing region.
        read_timeout: Read timeout in seconds.
        env_var: The environment variable the endpoint came from.
        ca_bundle: CA bundle path or None for the default.
    """

    endpoint: str
    secure: bool = True
    verify: bool = True
    region: str = "us-east-1"
    read_timeout: float = DEFAULT_READ_TIMEOUT_S
    env_var: str = "AWS_ENDPOINT_URL"
    ca_bundle: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The endpoint as a URL, e.g. ``http://minio-service.kubeflow:9000``."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def __repr__(self) -> str:
        creds = "set" if self.access_key else "anonymous"
        return f"S3Config(endpoint={self.url!r}, region={self.region!r}, credentials={creds})"

    __str__ = __repr__

    @classmethod
    def from_env(cls) -> S3Config:
        """Read the S3 settings from the environment (see the module docstring).

        Returns:
            The settings.

        Raises:
            StorageError: No endpoint variable is set.
            ConfigError: A variable has an invalid value, or only one credential is set.
        """
        env_var, raw = next(
            ((v, os.environ[v].strip()) for v in ENDPOINT_VARS if os.environ.get(v, "").strip()),
            ("", ""),
        )
        if not raw:
            raise StorageError(
                "no S3 endpoint configured: set AWS_ENDPOINT_URL (e.g. "
                "http://minio-service.kubeflow:9000) or S3_ENDPOINT (host:port, with "
                "S3_USE_HTTPS=0 for plain HTTP), and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        if "://" in raw:
            parts = urlsplit(raw)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"{env_var}={raw!r} is not an S3 endpoint; expected http(s)://HOST[:PORT]"
                )
            if parts.path.strip("/") or parts.query:
                raise ConfigError(
                    f"{env_var}={raw!r} has a path; expected http(s)://HOST[:PORT] only"
                )
            if "@" in parts.netloc:
                raise ConfigError(
                    f"{env_var} must not carry credentials; use AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY"
                )
            secure, endpoint = parts.scheme == "https", parts.netloc
        else:
            endpoint = raw.rstrip("/")
            if "/" in endpoint or "@" in endpoint:
                raise ConfigError(f"{env_var}={raw!r} is not HOST[:PORT]")
            secure = _env_bool("S3_USE_HTTPS", True)
        access = os.environ.get("AWS_ACCESS_KEY_ID") or None
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or None
        if bool(access) != bool(secret):
            have, missing = (
                ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                if access
                else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
            )
            raise ConfigError(f"{have} is set but {missing} is not; set both or neither")
        raw_timeout = os.environ.get("KFEDGE_S3_TIMEOUT", "").strip()
        try:
            timeout = float(raw_timeout) if raw_timeout else DEFAULT_READ_TIMEOUT_S
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ConfigError(
                f"KFEDGE_S3_TIMEOUT={raw_timeout!r} is not a positive number of seconds"
            )
        return cls(
            endpoint=endpoint,
            secure=secure,
            verify=_env_bool("S3_VERIFY_SSL", True),
            region=(
                os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            ),
            read_timeout=timeout,
            env_var=env_var,
            ca_bundle=os.environ.get("AWS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None,
            access_key=access,
            secret_key=secret,
            session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        )

    def redact(self, text: str) -> str:
        """Return ``text`` with any credential replaced by ``***``."""
        for value in (self.secret_key, self.session_token, self.access_key):
            if value:
                text = text.replace(value, "***")
        return text


def s3_client(config: S3Config | None = None) -> Any:
    """Build a ``minio.Minio`` client that times out instead of hanging.

    Connect timeout is 5 s, read timeout ``KFEDGE_S3_TIMEOUT`` (default 60 s), with one
    retry for connection errors and two for 5xx answers, so an unreachable endpoint fails
    within about 15 s.

    Args:
        config: Settings; read from the environment when None.

    Returns:
        A configured ``minio.Minio``.

    Raises:
        StorageError: No endpoint configured.
        ConfigError: Invalid settings.
    """
    cfg = config or S3Config.from_env()
    minio = require("minio")
    urllib3 = require("urllib3")
    ca_certs = cfg.ca_bundle
    if ca_certs is None:
        with contextlib.suppress(ImportError):
            ca_certs = require("certifi").where()
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=cfg.read_timeout),
        maxsize=10,
        cert_reqs="CERT_REQUIRED" if cfg.verify else "CERT_NONE",
        ca_certs=ca_certs if cfg.verify else None,
        retries=urllib3.Retry(
            total=2,
            connect=1,
            read=1,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
            raise_on_status=False,
        ),
    )
    if not cfg.verify:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return minio.Minio(
        cfg.endpoint,
        access_key=cfg.access_key,
        secret_key=cfg.secret_key,
        session_token=cfg.session_token,
        secure=cfg.secure,
        region=cfg.region,
        http_client=http,
        cert_check=cfg.verify,
    )


class _S3:
    """A client plus its settings, with error translation to kfedge errors."""

    def __init__(self) -> None:
        self.cfg = S3Config.from_env()
        self.client = s3_client(self.cfg)
        self.error_types = require("minio.error")
        self.urllib3_errors = require("urllib3.exceptions")

    def __repr__(self) -> str:
        return f"_S3({self.cfg!r})"

    @contextlib.contextmanager
    def errors(self, bucket: str, key: str | None = None) -> Iterator[None]:
        """Translate minio / urllib3 errors raised inside the block into kfedge errors."""
        try:
            yield
        except self.error_types.S3Error as exc:
            raise self._from_s3_error(exc, bucket, key) from None
        except (self.error_types.ServerError, self.error_types.InvalidResponseError) as exc:
            msg = self.cfg.redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise StorageError(
                f"S3 endpoint {self.cfg.url} answered unexpectedly for "
                f"{_s3_uri(bucket, key or '')}: {msg[:300]}"
            ) from None
        except self.urllib3_errors.HTTPError as exc:
            e = self.urllib3_errors
            reason = self.cfg.redact(_reason(exc))
            cause = getattr(exc, "reason", None) or exc
            if isinstance(cause, e.ReadTimeoutError):
                raise StorageError(
                    f"S3 endpoint {self.cfg.url} (from {self.cfg.env_var}) did not answer within "
                    f"{self.cfg.read_timeout:g} s (KFEDGE_S3_TIMEOUT sets the limit)"
                ) from None
            if isinstance(exc, e.MaxRetryError | e.NewConnectionError | e.ConnectTimeoutError):
                raise StorageError(
                    f"cannot reach S3 endpoint {self.cfg.url} (from {self.cfg.env_var}): "
                    f"{reason}; check the endpoint and that the server is running"
                ) from None
            raise StorageError(
                f"transfer of {_s3_uri(bucket, key or '')} from S3 endpoint {self.cfg.url} "
                f"failed: {reason}"
            ) from None

    def _from_s3_error(self, exc: Any, bucket: str, key: str | None) -> Exception:
        code = exc.code or ""
        where = _s3_uri(bucket, key) if key is not None else f"bucket '{bucket}'"
        if code in _AUTH_CODES:
            return StorageError(
                f"access denied ({code}) for {where} at endpoint {self.cfg.url}: "
                "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy"
            )
        if code == "NoSuchBucket" or (code in _MISSING_CODES and not self._bucket_exists(bucket)):
            return NotFoundError(f"bucket '{bucket}' does not exist at endpoint {self.cfg.url}")
        if code in _MISSING_CODES:
            return NotFoundError(f"no object {where} at endpoint {self.cfg.url}")
        message = self.cfg.redact(exc.message or "")
        return StorageError(f"S3 error {code} for {where} at {self.cfg.url}: {message}")

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            return bool(self.client.bucket_exists(bucket))
        except Exception:  # the first error is the one to report
            return True

    def require_bucket(self, bucket: str, for_write: bool = False) -> None:
        """Raise NotFoundError when ``bucket`` does not exist.

        Args:
            bucket: Bucket name.
            for_write: Credentials that may write but not list the bucket are let through
                (the write itself reports a real denial).
        """
        with self.errors(bucket):
            try:
                found = self.client.bucket_exists(bucket)
            except self.error_types.S3Error as exc:
                if for_write and exc.code in _AUTH_CODES:
                    return
                raise
            if not found:
                raise NotFoundError(f"bucket '{bucket}' does not exist at endpoint {self.cfg.url}")

    def stat(self, bucket: str, key: str) -> Any | None:
        """Stat an object; None when there is no such key (the bucket exists)."""
        with self.errors(bucket, key):
            try:
                obj = self.client.stat_object(bucket, key)
            except self.error_types.S3Error as exc:
                if exc.code in _MISSING_CODES and self._bucket_exists(bucket):
                    return None
                raise
        if obj.is_dir or key.endswith("/") or obj.content_type == "application/x-directory":
            return None
        return obj

    def list_files(self, bucket: str, prefix: str) -> list[Any]:
        """All objects (no directory markers) under ``prefix``."""
        with self.errors(bucket, prefix):
            return [
                o
                for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)
                if not o.is_dir and not o.object_name.endswith("/")
            ]


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:\s*", "", text)
    text = re.sub(r"^HTTPS?Connection(Pool)?\([^)]*\):\s*", "", text)
    text = re.sub(r"\(Caused by [A-Za-z]+\((.*)\)\)$", r"\1", text)
    return text.strip()[:300] or type(reason).__name__


# --------------------------------------------------------------------------- local helpers


def _tmp_sibling(final: Path) -> Path:
    return final.parent / f".{final.name}.{secrets.token_hex(4)}{_TMP_TAG}"


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


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


def _replace_into(tmp: Path, final: Path) -> None:
    """Rename a complete ``tmp`` onto ``final``; an old directory there is swapped out."""
    if (final.is_dir() and not final.is_symlink()) or (tmp.is_dir() and final.exists()):
        old = _tmp_sibling(final)
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old, final)
            raise
        with contextlib.suppress(OSError):
            _remove(old)
    else:
        os.replace(tmp, final)


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
    s3 = _S3()
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create download folder {dest}: {exc.strerror}") from None
    final = dest / _basename(key, bucket)
    obj = s3.stat(bucket, key) if key and not key.endswith("/") else None
    if obj is not None:
        _download_file(s3, bucket, key, final, obj.size)
        log.info("fetched %s -> %s (%d bytes)", _s3_uri(bucket, key), final, obj.size)
        return final
    prefix = key if not key or key.endswith("/") else key + "/"
    objects = s3.list_files(bucket, prefix)
    if not objects:
        s3.require_bucket(bucket)
        raise NotFoundError(f"no object or prefix {_s3_uri(bucket, key)} at endpoint {s3.cfg.url}")
    tmp = _tmp_sibling(final)
    try:
        tmp.mkdir()
        total = 0
        for o in objects:
            rel = o.object_name[len(prefix) :]
            parts = [p for p in rel.split("/") if p]
            if not parts or any(p in (".", "..") for p in parts):
                raise StorageError(f"refusing unsafe object key {_s3_uri(bucket, o.object_name)}")
            target = tmp.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            _download_file(s3, bucket, o.object_name, target, o.size, etag=o.etag)
            total += o.size
        _replace_into(tmp, final)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {final} while fetching {uri}: {exc}") from None
        raise
    log.info(
        "fetched %s (%d objects, %d bytes) -> %s",
        _s3_uri(bucket, prefix),
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
    s3: _S3, bucket: str, key: str, final: Path, size: int, etag: str | None = None
) -> None:
    """Download one object to ``final`` through a checked temporary sibling."""
    uri = _s3_uri(bucket, key)
    tmp = _tmp_sibling(final)
    response = None
    try:
        with s3.errors(bucket, key):
            response = s3.client.get_object(bucket, key)
            headers = response.headers
            etag = (headers.get("ETag") or etag or "").strip('"').lower()
            length = headers.get("Content-Length")
            expected = int(length) if length is not None else size
            encrypted = headers.get("x-amz-server-side-encryption", "").startswith(
                "aws:kms"
            ) or bool(headers.get("x-amz-server-side-encryption-customer-algorithm"))
            hasher = hashlib.md5(usedforsecurity=False)
            with open(tmp, "xb") as fh:
                written = _stream_to_file(response, fh, hasher)
                fh.flush()
                os.fsync(fh.fileno())
        if written != expected:
            raise StorageError(
                f"download of {uri} is incomplete: got {written} of {expected} bytes"
            )
        if _MD5_RE.match(etag) and not encrypted and hasher.hexdigest() != etag:
            raise StorageError(
                f"download of {uri} is corrupt: MD5 {hasher.hexdigest()} does not match ETag {etag}"
            )
        _replace_into(tmp, final)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {final} while fetching {uri}: {exc}") from None
        raise
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
        s3 = _S3()
        s3.require_bucket(bucket, for_write=True)  # SeaweedFS would create it on PUT
        _put_s3_file(s3, src, bucket, key)
    log.info("stored %s -> %s", src, _s3_uri(bucket, key))
    return _s3_uri(bucket, key)


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
    tmp = _tmp_sibling(dest)
    try:
        if src.is_dir():
            shutil.copytree(src, tmp, copy_function=_copy_local_file)
        else:
            _copy_local_file(src, tmp)
        _replace_into(tmp, dest)
    except OSError as exc:
        _remove(tmp)
        raise StorageError(f"cannot copy {src} to {dest}: {exc}") from None
    except BaseException:
        _remove(tmp)
        raise


class _HashingReader:
    """A file wrapper that hashes and counts what is read through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.md5.update(data)
        self.count += len(data)
        return data


def _put_s3_file(s3: _S3, src: Path, bucket: str, key: str) -> None:
    uri = _s3_uri(bucket, key)
    size = src.stat().st_size
    try:
        with _open_source(src) as fh:
            reader = _HashingReader(fh)
            with s3.errors(bucket, key):
                result = s3.client.put_object(bucket, key, reader, size)
    except OSError as exc:
        raise StorageError(f"cannot read {src} while storing it at {uri}: {exc}") from None
    etag = (result.etag or "").strip('"').lower()
    if reader.count != size or (_MD5_RE.match(etag) and etag != reader.md5.hexdigest()):
        with contextlib.suppress(Exception), s3.errors(bucket, key):
            s3.client.remove_object(bucket, key)
        raise StorageError(
            f"upload of {src} to {uri} did not verify (sent {reader.count} of {size} bytes, "
            f"ETag {etag or 'none'}); the object was removed"
        )


def _put_s3_tree(src: Path, bucket: str, prefix: str) -> None:
    files = _source_files(src)
    if not files:
        raise InvalidInputError(f"nothing to store: {src} is an empty directory")
    s3 = _S3()
    s3.require_bucket(bucket, for_write=True)
    base = prefix.rstrip("/") + "/"
    done: list[str] = []
    try:
        for path, rel in files:
            _put_s3_file(s3, path, bucket, base + rel)
            done.append(base + rel)
    except BaseException as exc:
        removed = _rollback(s3, bucket, done)
        if isinstance(exc, StorageError | InvalidInputError | NotFoundError):
            raise type(exc)(
                f"{exc}; upload of {src} to {_s3_uri(bucket, base)} rolled back "
                f"({removed} of {len(done)} objects removed)"
            ) from None
        raise


def _rollback(s3: _S3, bucket: str, keys: list[str]) -> int:
    removed = 0
    for key in keys:
        try:
            s3.client.remove_object(bucket, key)
            removed += 1
        except Exception:  # best effort: report the count, keep the first error
            log.warning("could not remove %s after a failed upload", _s3_uri(bucket, key))
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
    s3 = _S3()
    with s3.errors(bucket, key):
        if not key:
            return bool(s3.client.bucket_exists(bucket))
    try:
        if not key.endswith("/") and s3.stat(bucket, key) is not None:
            return True
        prefix = key if key.endswith("/") else key + "/"
        with s3.errors(bucket, prefix):
            found = s3.client.list_objects(bucket, prefix=prefix, recursive=True)
            return any(not o.is_dir and not o.object_name.endswith("/") for o in found)
    except NotFoundError:
        return False
