"""S3 connection: settings from the environment, the ``minio`` client, and error translation.

Configured only from the environment, as KFP (a Kubernetes Secret mapped to env vars) and
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
``KFEDGE_S3_ATTEMPTS``                   attempts per operation for transient faults
                                         (default 4; 1 = no retry)
=======================================  ===================================================

With no endpoint variable set, inside a Kubernetes pod (``KUBERNETES_SERVICE_HOST``), the
endpoint is Kubeflow Pipelines' own object store, the first of its known in-cluster addresses
(``kfp_object_store`` in ``kfedge/data/kserve_defaults.yaml``: SeaweedFS on KFP 2.16+, MinIO's
service name on 2.14 / 2.15) that accepts a connection; so ``s3://`` URIs work in a default
install with KFP's artifact-store credentials and no endpoint parameter.

Faults are sorted as :mod:`kfedge.retry` needs: a timeout, a refused or reset connection, a 5xx,
``SlowDown`` / ``InternalError`` / ``ServiceUnavailable`` / ``RequestTimeout`` or a 429 raise
:class:`~kfedge.errors.TransientStorageError` and are retried with backoff
(:meth:`S3Session.retrying`); a missing bucket or key, denied access, an unknown host name or a
TLS failure are the user's to fix and fail at once.

Credentials never appear in messages, reprs or logs. Transfers (fetch / put) are in
:mod:`kfedge.storage`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kfedge.compat import require
from kfedge.errors import ConfigError, NotFoundError, StorageError, TransientStorageError
from kfedge.retry import ATTEMPTS, retry
from kfedge.uris import parse_endpoint, s3_uri

__all__ = ["ENDPOINT_VARS", "S3Config", "S3Session", "kfp_object_store", "s3_client"]

T = TypeVar("T")

#: Environment variables read for the endpoint, in order of precedence.
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT", "AWS_S3_ENDPOINT")
CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 60.0
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
#: S3 error codes a retry can fix (AWS / MinIO / SeaweedFS name them so).
_TRANSIENT_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "OperationAborted",
    "XMinioServerNotInitialized",
}
#: Seconds to wait for a TCP connection when probing KFP's object store.
KFP_STORE_PROBE_S = 2.0


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
        env_var: The environment variable the endpoint came from (or KFP's object store).
        ca_bundle: CA bundle path or None for the default.
        attempts: Attempts per operation for transient faults (``KFEDGE_S3_ATTEMPTS``).
    """

    endpoint: str
    secure: bool = True
    verify: bool = True
    region: str = "us-east-1"
    read_timeout: float = DEFAULT_READ_TIMEOUT_S
    env_var: str = "AWS_ENDPOINT_URL"
    ca_bundle: str | None = None
    attempts: int = ATTEMPTS
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
            StorageError: No endpoint variable is set (and, in a pod, KFP's object store
                answers at none of its addresses).
            ConfigError: A variable has an invalid value, or only one credential is set.
        """
        env_var, raw = next(
            ((v, os.environ[v].strip()) for v in ENDPOINT_VARS if os.environ.get(v, "").strip()),
            ("", ""),
        )
        if not raw and os.environ.get("KUBERNETES_SERVICE_HOST"):
            raw = kfp_object_store() or ""
            env_var = "KFP's object store (no endpoint variable set)"
        if not raw:
            raise StorageError(
                "no S3 endpoint configured: set AWS_ENDPOINT_URL (e.g. "
                "http://seaweedfs.kubeflow:8333) or S3_ENDPOINT (host:port, with "
                "S3_USE_HTTPS=0 for plain HTTP), and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        scheme, endpoint = parse_endpoint(raw, env_var)
        secure = scheme == "https" if scheme else _env_bool("S3_USE_HTTPS", True)
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
        raw_attempts = os.environ.get("KFEDGE_S3_ATTEMPTS", "").strip()
        try:
            attempts = int(raw_attempts) if raw_attempts else ATTEMPTS
        except ValueError:
            attempts = 0
        if attempts < 1:
            raise ConfigError(f"KFEDGE_S3_ATTEMPTS={raw_attempts!r} is not an integer >= 1")
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
            attempts=attempts,
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


def _kfp_store_candidates() -> list[str]:
    """KFP's in-cluster object-store addresses, newest release first, each once."""
    from kfedge.support import kserve_defaults

    out: list[str] = []
    for entry in reversed(kserve_defaults()["kfp_object_store"]):
        for k in ("endpoint", "also"):
            if entry.get(k) and entry[k] not in out:
                out.append(entry[k])
    return out


@functools.lru_cache(maxsize=1)
def kfp_object_store() -> str | None:
    """The URL of Kubeflow Pipelines' own object store, when one of its addresses answers.

    Tries each known in-cluster address (SeaweedFS for KFP 2.16+, then 2.15's, then MinIO's
    ``minio-service.kubeflow:9000``) with a TCP connection of at most 2 s; the answer is kept
    for the process.

    Returns:
        ``http://host:port`` of the first that accepts a connection, or None.
    """
    for hostport in _kfp_store_candidates():
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=KFP_STORE_PROBE_S):
                return f"http://{hostport}"
        except (OSError, ValueError):
            continue
    return None


def s3_client(config: S3Config | None = None) -> Any:
    """Build a ``minio.Minio`` client that times out instead of hanging.

    Connect timeout is 5 s, read timeout ``KFEDGE_S3_TIMEOUT`` (default 60 s). The HTTP layer
    does not retry: :meth:`S3Session.retrying` retries transient faults, counted and logged.

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
        retries=False,
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


class S3Session:
    """A client plus its settings (from the environment), with error translation.

    Attributes:
        cfg: The settings.
        client: The ``minio.Minio`` client.
    """

    def __init__(self) -> None:
        self.cfg = S3Config.from_env()
        self.client = s3_client(self.cfg)
        self.error_types = require("minio.error")
        self.urllib3_errors = require("urllib3.exceptions")

    def __repr__(self) -> str:
        return f"S3Session({self.cfg!r})"

    def retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Call ``fn``, retrying :class:`~kfedge.errors.TransientStorageError` with backoff.

        Args:
            what: What is done, for the log line (``download s3://b/k``).
            fn: The operation; it must raise kfedge errors (wrap its calls in
                :meth:`errors`) and be safe to repeat.

        Returns:
            What ``fn`` returned.
        """
        return retry(fn, attempts=self.cfg.attempts, what=what)

    @contextlib.contextmanager
    def errors(self, bucket: str, key: str | None = None) -> Iterator[None]:
        """Translate minio / urllib3 errors raised inside the block into kfedge errors.

        Transient faults become :class:`~kfedge.errors.TransientStorageError`, the rest
        :class:`~kfedge.errors.StorageError` / :class:`~kfedge.errors.NotFoundError`.
        """
        try:
            yield
        except self.error_types.S3Error as exc:
            raise self._from_s3_error(exc, bucket, key) from None
        except (self.error_types.ServerError, self.error_types.InvalidResponseError) as exc:
            msg = self.cfg.redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            status = getattr(exc, "status_code", None) or getattr(exc, "_code", None) or 0
            kind = TransientStorageError if int(status) >= 500 or status == 429 else StorageError
            raise kind(
                f"S3 endpoint {self.cfg.url} answered unexpectedly for "
                f"{s3_uri(bucket, key or '')}: {msg[:300]}"
            ) from None
        except self.urllib3_errors.HTTPError as exc:
            raise self._from_transport_error(exc, bucket, key) from None

    def _from_transport_error(self, exc: Any, bucket: str, key: str | None) -> Exception:
        e = self.urllib3_errors
        reason = self.cfg.redact(_reason(exc))
        cause = getattr(exc, "reason", None) or exc
        if isinstance(cause, e.ReadTimeoutError):
            return TransientStorageError(
                f"S3 endpoint {self.cfg.url} (from {self.cfg.env_var}) did not answer within "
                f"{self.cfg.read_timeout:g} s (KFEDGE_S3_TIMEOUT sets the limit)"
            )
        if isinstance(cause, e.NameResolutionError):
            return StorageError(
                f"cannot reach S3 endpoint {self.cfg.url} (from {self.cfg.env_var}): unknown "
                "host name; check the endpoint"
            )
        if isinstance(cause, e.SSLError):
            return StorageError(
                f"TLS with S3 endpoint {self.cfg.url} failed: {reason}; check AWS_CA_BUNDLE / "
                "S3_VERIFY_SSL, or use http:// for a plain-HTTP endpoint"
            )
        if isinstance(exc, e.MaxRetryError | e.NewConnectionError | e.ConnectTimeoutError):
            return TransientStorageError(
                f"cannot reach S3 endpoint {self.cfg.url} (from {self.cfg.env_var}): "
                f"{reason}; check the endpoint and that the server is running"
            )
        return TransientStorageError(
            f"transfer of {s3_uri(bucket, key or '')} from S3 endpoint {self.cfg.url} "
            f"failed: {reason}"
        )

    def _from_s3_error(self, exc: Any, bucket: str, key: str | None) -> Exception:
        code = exc.code or ""
        where = s3_uri(bucket, key) if key is not None else f"bucket '{bucket}'"
        status = int(getattr(getattr(exc, "response", None), "status", 0) or 0)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            message = self.cfg.redact(exc.message or "")
            return TransientStorageError(
                f"S3 endpoint {self.cfg.url} is busy or failing ({code or status}) for {where}: "
                f"{message[:200]}"
            )
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

        def check() -> bool | None:
            with self.errors(bucket):
                try:
                    return bool(self.client.bucket_exists(bucket))
                except self.error_types.S3Error as exc:
                    if for_write and exc.code in _AUTH_CODES:
                        return None
                    raise

        found = self.retrying(f"check bucket {bucket}", check)
        if found is False:
            raise NotFoundError(f"bucket '{bucket}' does not exist at endpoint {self.cfg.url}")

    def bucket_exists(self, bucket: str) -> bool:
        """Whether ``bucket`` exists (transient faults retried)."""

        def check() -> bool:
            with self.errors(bucket):
                return bool(self.client.bucket_exists(bucket))

        return self.retrying(f"check bucket {bucket}", check)

    def stat(self, bucket: str, key: str) -> Any | None:
        """Stat an object; None when there is no such key (the bucket exists)."""

        def head() -> Any | None:
            with self.errors(bucket, key):
                try:
                    return self.client.stat_object(bucket, key)
                except self.error_types.S3Error as exc:
                    if exc.code in _MISSING_CODES and self._bucket_exists(bucket):
                        return None
                    raise

        obj = self.retrying(f"stat {s3_uri(bucket, key)}", head)
        if obj is None:
            return None
        if obj.is_dir or key.endswith("/") or obj.content_type == "application/x-directory":
            return None
        return obj

    def list_files(self, bucket: str, prefix: str) -> list[Any]:
        """All objects (no directory markers) under ``prefix``."""

        def listing() -> list[Any]:
            with self.errors(bucket, prefix):
                return [
                    o
                    for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)
                    if not o.is_dir and not o.object_name.endswith("/")
                ]

        return self.retrying(f"list {s3_uri(bucket, prefix)}", listing)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:\s*", "", text)
    text = re.sub(r"^HTTPS?Connection(Pool)?\([^)]*\):\s*", "", text)
    text = re.sub(r"\(Caused by [A-Za-z]+\((.*)\)\)$", r"\1", text)
    return text.strip()[:300] or type(reason).__name__
