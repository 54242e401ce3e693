"""kfedge.uris, kfedge.s3 and kfedge.storage: URIs, S3 settings, local paths, file:// and s3://
(against a real SeaweedFS server)."""

from __future__ import annotations

import io
import logging
import os
import socket
import time
from pathlib import Path

import pytest
from s3fixtures import S3_ENV_VARS, S3Server, free_ports, make_bucket

from kfedge import storage, uris
from kfedge.errors import ConfigError, InvalidInputError, NotFoundError, StorageError
from kfedge.s3 import S3Session

SIX_MIB = 6 * 1024 * 1024  # above minio's 5 MiB part size: a multipart upload


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "saved_model.pb": b"\x08\x01pb-bytes",
        "fingerprint.pb": b"",
        "variables/variables.index": b"index" * 100,
        "variables/variables.data-00000-of-00001": os.urandom(70_000),
        "assets/deep/nested/labels.txt": b"cat\ndog\n",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class _FailingReader(io.RawIOBase):
    """A file that returns ``good`` bytes and then fails like a dying disk."""

    def __init__(self, path: Path, good: int) -> None:
        self._fh = path.open("rb")
        self._left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise OSError(5, "Input/output error (injected)")
        n = self._left if size is None or size < 0 else min(size, self._left)
        data = self._fh.read(n)
        self._left -= len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _fail_reading(monkeypatch: pytest.MonkeyPatch, name: str, good: int = 10) -> None:
    real = storage._open_source

    def fake(path: Path):  # type: ignore[no-untyped-def]
        return _FailingReader(path, good) if Path(path).name == name else real(path)

    monkeypatch.setattr(storage, "_open_source", fake)


@pytest.fixture
def no_s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in S3_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- URIs


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/model.tflite", ("file", "", "/data/model.tflite")),
        ("relative/dir", ("file", "", "relative/dir")),
        ("file:///data/my%20model.onnx", ("file", "", "/data/my model.onnx")),
        ("file://localhost/data/x", ("file", "", "/data/x")),
        ("s3://bucket/models/m.tflite", ("s3", "bucket", "models/m.tflite")),
        ("S3://bucket/dir/", ("s3", "bucket", "dir/")),
        ("s3://bucket", ("s3", "bucket", "")),
        ("minio://mlpipeline/v2/artifacts/x", ("s3", "mlpipeline", "v2/artifacts/x")),
    ],
)
def test_parse_uri(uri: str, expected: tuple[str, str, str]) -> None:
    assert uris.parse_uri(uri) == expected
    assert storage.parse_uri is uris.parse_uri  # storage re-exports the one parser


def test_parse_uri_accepts_pathlike(tmp_path: Path) -> None:
    assert uris.parse_uri(tmp_path) == ("file", "", str(tmp_path))
    assert not uris.is_remote(tmp_path)
    assert uris.is_remote("s3://bucket/key")


def test_local_path(tmp_path: Path) -> None:
    assert uris.local_path(tmp_path) == tmp_path
    assert uris.local_path(f"file://{tmp_path}/a%20b") == tmp_path / "a b"
    assert uris.local_path("~/x") == Path.home() / "x"
    with pytest.raises(InvalidInputError, match="not a local path"):
        uris.local_path("s3://bucket/key")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/k", "s3://b/k"),
        ("minio://mlpipeline/v2/x", "s3://mlpipeline/v2/x"),
        ("GS://b/k", "gs://b/k"),
        ("pvc://claim/models/m", "pvc://claim/models/m"),
        ("https://host/m.onnx", "https://host/m.onnx"),
    ],
)
def test_kserve_storage_uri(uri: str, expected: str) -> None:
    assert uris.kserve_storage_uri(uri) == expected


@pytest.mark.parametrize("uri", ["/tmp/model", "file:///tmp/m", "s3://", "minio:///", "ftp://h/m"])
def test_kserve_storage_uri_refuses_what_kserve_cannot_fetch(uri: str) -> None:
    with pytest.raises(ConfigError, match="storage URI KServe's storage initializer can fetch"):
        uris.kserve_storage_uri(uri)


def test_parse_endpoint() -> None:
    assert uris.parse_endpoint("http://minio:9000/", "E") == ("http", "minio:9000")
    assert uris.parse_endpoint(" https://s3.example.com ", "E") == ("https", "s3.example.com")
    assert uris.parse_endpoint("minio:9000", "E") == ("", "minio:9000")
    for bad, needle in [
        ("ftp://h:1", "not an endpoint"),
        ("http://h:1/bucket", "has a path"),
        ("h:1/bucket", "not HOST"),
        ("http://user:pa55word@h:1", "must not carry credentials"),
        ("user:pa55word@h:1", "must not carry credentials"),
    ]:
        with pytest.raises(ConfigError, match=needle) as err:
            uris.parse_endpoint(bad, "S3_ENDPOINT")
        assert "S3_ENDPOINT" in str(err.value) and "pa55word" not in str(err.value)


@pytest.mark.parametrize("uri", ["http://host/x", "https://host/x", "gs://b/k", "hdfs://nn/x"])
def test_unknown_scheme(uri: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        uris.parse_uri(uri)
    msg = str(err.value)
    assert uri.split(":")[0] in msg and "s3://" in msg and "file://" in msg


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("", "empty"),
        ("s3:///key", "no bucket"),
        ("s3://a/key", "not a valid bucket name"),
        ("s3://bucket/a/../b", "'..'"),
        ("file://otherhost/x", "otherhost"),
    ],
)
def test_malformed_uris(uri: str, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        uris.parse_uri(uri)


# --------------------------------------------------------------------------- local


def test_fetch_local_returns_path_itself(tmp_path: Path) -> None:
    f = tmp_path / "m.tflite"
    f.write_bytes(b"x")
    dest = tmp_path / "dest"
    assert storage.fetch(f, dest) == f
    assert storage.fetch(str(f), dest) == f
    assert storage.fetch(f.as_uri(), dest) == f
    assert storage.fetch(tmp_path, dest) == tmp_path
    assert not dest.exists()  # no copy


def test_fetch_local_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(NotFoundError, match="nope.onnx"):
        storage.fetch(missing, tmp_path)
    with pytest.raises(NotFoundError, match="nope.onnx"):
        storage.fetch(missing.as_uri(), tmp_path)


def test_exists_local(tmp_path: Path) -> None:
    assert storage.exists(tmp_path)
    assert storage.exists(tmp_path.as_uri())
    assert not storage.exists(tmp_path / "missing")


def test_put_local_file_and_file_uri(tmp_path: Path) -> None:
    src = tmp_path / "m.tflite"
    src.write_bytes(b"TFL3" * 1000)
    out = tmp_path / "out" / "a" / "model.tflite"
    assert storage.put(src, out) == str(out)
    assert out.read_bytes() == src.read_bytes()
    uri = (tmp_path / "out2" / "m.tflite").as_uri()
    assert storage.put(src, uri) == uri
    assert (tmp_path / "out2" / "m.tflite").read_bytes() == src.read_bytes()
    assert storage.put(src, str(tmp_path / "folder") + "/") == str(tmp_path / "folder" / "m.tflite")
    assert (tmp_path / "folder" / "m.tflite").is_file()
    assert _leftovers(out.parent) == ["model.tflite"]


def test_put_local_dir_replaces_whole_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = _make_tree(src)
    dest = tmp_path / "dest" / "model"
    (dest / "stale").mkdir(parents=True)
    (dest / "stale" / "old.bin").write_bytes(b"old")
    storage.put(src, dest)
    assert _tree(dest) == files
    assert _leftovers(dest.parent) == ["model"]


def test_put_local_missing_source(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        storage.put(tmp_path / "ghost", tmp_path / "x")


def test_put_local_file_failure_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(100_000))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _fail_reading(monkeypatch, "big.bin", good=50_000)
    with pytest.raises(StorageError, match="big.bin"):
        storage.put(src, out_dir / "big.bin")
    assert _leftovers(out_dir) == []
    # An existing complete file is left as it was.
    (out_dir / "big.bin").write_bytes(b"previous")
    with pytest.raises(StorageError):
        storage.put(src, out_dir / "big.bin")
    assert (out_dir / "big.bin").read_bytes() == b"previous"
    assert _leftovers(out_dir) == ["big.bin"]


def test_put_local_dir_failure_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    out = tmp_path / "out"
    out.mkdir()
    _fail_reading(monkeypatch, "labels.txt", good=2)
    with pytest.raises(StorageError):
        storage.put(src, out / "model")
    assert _leftovers(out) == []
    (out / "model").mkdir()
    (out / "model" / "keep.txt").write_text("previous")
    with pytest.raises(StorageError):
        storage.put(src, out / "model")
    assert _tree(out / "model") == {"keep.txt": b"previous"}
    assert _leftovers(out) == ["model"]


def test_put_local_clashes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="into itself"):
        storage.put(src, src / "inner")
    with pytest.raises(InvalidInputError, match="a directory is there"):
        storage.put(f, src)
    with pytest.raises(InvalidInputError, match="a file is there"):
        storage.put(src, f)
    assert storage.put(f, f) == str(f)  # same path: nothing to do
    assert f.read_bytes() == b"x"


# --------------------------------------------------------------------------- configuration


def test_no_endpoint_configured(no_s3_env: None, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as err:
        storage.fetch("s3://bucket/key", tmp_path)
    assert "AWS_ENDPOINT_URL" in str(err.value) and "S3_ENDPOINT" in str(err.value)


def test_config_from_env_variants(no_s3_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT", "minio-service.kubeflow:9000")
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    cfg = storage.S3Config.from_env()
    assert (cfg.endpoint, cfg.secure, cfg.url) == (
        "minio-service.kubeflow:9000",
        False,
        "http://minio-service.kubeflow:9000",
    )
    monkeypatch.delenv("S3_USE_HTTPS")
    assert storage.S3Config.from_env().secure  # HTTPS unless told otherwise
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.com/")
    monkeypatch.setenv("S3_VERIFY_SSL", "0")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("KFEDGE_S3_TIMEOUT", "7.5")
    cfg = storage.S3Config.from_env()
    assert (cfg.endpoint, cfg.secure, cfg.verify, cfg.region, cfg.read_timeout) == (
        "s3.example.com",
        True,
        False,
        "eu-west-1",
        7.5,
    )
    assert cfg.env_var == "AWS_ENDPOINT_URL"
    monkeypatch.setenv("AWS_S3_ENDPOINT", "ignored:1")
    assert storage.S3Config.from_env().endpoint == "s3.example.com"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"S3_ENDPOINT": "h:9000", "S3_USE_HTTPS": "maybe"}, "S3_USE_HTTPS"),
        ({"AWS_ENDPOINT_URL": "ftp://h:9000"}, "AWS_ENDPOINT_URL"),
        ({"AWS_ENDPOINT_URL": "http://h:9000/some/path"}, "path"),
        ({"AWS_ENDPOINT_URL": "http://h:9000", "AWS_ACCESS_KEY_ID": "AK"}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ENDPOINT_URL": "http://h:9000", "KFEDGE_S3_TIMEOUT": "soon"}, "KFEDGE_S3_TIMEOUT"),
    ],
)
def test_config_errors(
    no_s3_env: None, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=needle):
        storage.S3Config.from_env()


def test_config_repr_hides_secrets(no_s3_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAVISIBLEKEY123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SuperSecretValue987")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "SessionTokenValue555")
    cfg = storage.S3Config.from_env()
    for text in (repr(cfg), str(cfg), repr(S3Session())):
        for secret in ("AKIAVISIBLEKEY123", "SuperSecretValue987", "SessionTokenValue555"):
            assert secret not in text


def test_unreachable_endpoint_fails_fast(
    no_s3_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (port,) = free_ports(1)  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNREACHABLE42")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "UnreachableSecret42")
    caplog.set_level(logging.DEBUG)
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    for call in (
        lambda: storage.fetch("s3://bucket/key", tmp_path / "dl"),
        lambda: storage.put(src, "s3://bucket/key"),
        lambda: storage.exists("s3://bucket/key"),
    ):
        start = time.monotonic()
        with pytest.raises(StorageError) as err:
            call()
        assert time.monotonic() - start < 15
        msg = str(err.value)
        assert f"127.0.0.1:{port}" in msg and "cannot reach" in msg
        for secret in ("AKIAUNREACHABLE42", "UnreachableSecret42"):
            assert secret not in msg and secret not in repr(err.value)
    for secret in ("AKIAUNREACHABLE42", "UnreachableSecret42"):
        assert secret not in caplog.text
    assert _leftovers(tmp_path / "dl") == []


def test_silent_endpoint_times_out(
    no_s3_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A server that accepts connections (the kernel completes the handshake) and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASILENT")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SilentSecret")
        monkeypatch.setenv("KFEDGE_S3_TIMEOUT", "0.5")
        start = time.monotonic()
        with pytest.raises(
            StorageError, match=rf"127\.0\.0\.1:{port}.*did not answer within 0.5 s"
        ):
            storage.fetch("s3://bucket/key", tmp_path / "dl")
        assert time.monotonic() - start < 10
    assert _leftovers(tmp_path / "dl") == []


# --------------------------------------------------------------------------- S3


@pytest.mark.s3
def test_s3_file_round_trip(s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(123_457))
    uri = f"s3://{s3_bucket}/models/v1/model.tflite"
    assert storage.put(src, uri) == uri
    assert storage.exists(uri)
    got = storage.fetch(uri, tmp_path / "dl")
    assert got == tmp_path / "dl" / "model.tflite"
    assert got.read_bytes() == src.read_bytes()
    assert _leftovers(tmp_path / "dl") == ["model.tflite"]
    # A folder destination appends the name; a second fetch replaces the first.
    assert storage.put(src, f"s3://{s3_bucket}/models/v2/") == (
        f"s3://{s3_bucket}/models/v2/model.tflite"
    )
    src.write_bytes(b"changed")
    storage.put(src, uri)
    assert storage.fetch(uri, tmp_path / "dl").read_bytes() == b"changed"
    assert _leftovers(tmp_path / "dl") == ["model.tflite"]


@pytest.mark.s3
def test_s3_multipart_round_trip(s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "big.onnx"
    src.write_bytes(os.urandom(SIX_MIB + 17))
    uri = storage.put(src, f"s3://{s3_bucket}/big.onnx")
    assert storage.fetch(uri, tmp_path / "dl").read_bytes() == src.read_bytes()


@pytest.mark.s3
def test_s3_directory_round_trip(s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "saved_model"
    files = _make_tree(src)
    uri = f"s3://{s3_bucket}/runs/1/saved_model"
    assert storage.put(src, uri) == uri
    assert storage.exists(uri) and storage.exists(uri + "/")
    assert not storage.exists(f"s3://{s3_bucket}/runs/1/saved")
    got = storage.fetch(uri, tmp_path / "dl")
    assert got == tmp_path / "dl" / "saved_model" and got.is_dir()
    assert _tree(got) == files
    assert _tree(storage.fetch(uri + "/", tmp_path / "dl2")) == files
    whole = storage.fetch(f"s3://{s3_bucket}", tmp_path / "dl3")
    assert whole.name == s3_bucket
    assert _tree(whole) == {f"runs/1/saved_model/{k}": v for k, v in files.items()}
    # Fetching again replaces the tree as a whole (no stale files).
    (got / "stale.txt").write_text("x")
    assert _tree(storage.fetch(uri, tmp_path / "dl")) == files
    assert _leftovers(tmp_path / "dl") == ["saved_model"]


@pytest.mark.s3
def test_s3_fetch_replaces_other_kind(s3_bucket: str, tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"file")
    tree = tmp_path / "t"
    files = _make_tree(tree)
    storage.put(f, f"s3://{s3_bucket}/a/model")
    storage.put(tree, f"s3://{s3_bucket}/b/model")
    dl = tmp_path / "dl"
    assert storage.fetch(f"s3://{s3_bucket}/b/model", dl).is_dir()
    assert storage.fetch(f"s3://{s3_bucket}/a/model", dl).read_bytes() == b"file"
    assert _tree(storage.fetch(f"s3://{s3_bucket}/b/model", dl)) == files
    assert _leftovers(dl) == ["model"]


@pytest.mark.s3
def test_s3_put_folder_destination(s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "ds"
    files = _make_tree(src)
    assert storage.put(src, f"s3://{s3_bucket}/data/") == f"s3://{s3_bucket}/data/ds"
    assert _tree(storage.fetch(f"s3://{s3_bucket}/data/ds", tmp_path / "dl")) == files


@pytest.mark.s3
def test_s3_missing_bucket(s3_env: S3Server, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    for call in (
        lambda: storage.fetch("s3://no-such-bucket-kfedge/key", tmp_path / "dl"),
        lambda: storage.fetch("s3://no-such-bucket-kfedge/dir/", tmp_path / "dl"),
        lambda: storage.put(src, "s3://no-such-bucket-kfedge/key"),
        lambda: storage.put(tmp_path, "s3://no-such-bucket-kfedge/dir"),
    ):
        with pytest.raises(NotFoundError) as err:
            call()
        assert str(err.value) == (
            f"bucket 'no-such-bucket-kfedge' does not exist at endpoint {s3_env.endpoint_url}"
        )
    assert not storage.exists("s3://no-such-bucket-kfedge/key")
    assert not storage.exists("s3://no-such-bucket-kfedge")
    assert _leftovers(tmp_path / "dl") == []


@pytest.mark.s3
def test_s3_missing_key(s3_bucket: str, tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    with pytest.raises(NotFoundError) as err:
        storage.fetch(f"s3://{s3_bucket}/models/absent.tflite", dl)
    assert f"s3://{s3_bucket}/models/absent.tflite" in str(err.value)
    assert "bucket" not in str(err.value).split("s3://")[0]
    assert _leftovers(dl) == []
    assert not storage.exists(f"s3://{s3_bucket}/models/absent.tflite")
    assert storage.exists(f"s3://{s3_bucket}")


@pytest.mark.s3
def test_s3_bad_credentials(
    s3_server: S3Server,
    s3_env: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = make_bucket(s3_server)
    s3_server.client().put_object(bucket, "m.bin", io.BytesIO(b"abc"), 3)
    wrong_secret = "WrongSecretKfedge0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    caplog.set_level(logging.DEBUG)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    calls = (
        lambda: storage.fetch(f"s3://{bucket}/m.bin", tmp_path / "dl"),
        lambda: storage.put(src, f"s3://{bucket}/new.bin"),
        lambda: storage.exists(f"s3://{bucket}/m.bin"),
    )
    for call in calls:
        with pytest.raises(StorageError) as err:
            call()
        msg = str(err.value)
        assert "access denied" in msg and "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in msg
        for secret in (s3_server.access_key, s3_server.secret_key, wrong_secret):
            assert secret not in msg and secret not in repr(err.value)
            assert secret not in str(err.value.__cause__ or "")
    # Unknown access key too.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKFEDGE77")
    with pytest.raises(StorageError, match="access denied") as err:
        storage.fetch(f"s3://{bucket}/m.bin", tmp_path / "dl")
    assert "AKIAUNKNOWNKFEDGE77" not in str(err.value)
    for secret in (s3_server.access_key, s3_server.secret_key, wrong_secret, "AKIAUNKNOWNKFEDGE77"):
        assert secret not in caplog.text
    assert _leftovers(tmp_path / "dl") == []
    assert [o.object_name for o in s3_server.client().list_objects(bucket)] == ["m.bin"]


@pytest.mark.s3
def test_s3_secrets_never_logged_on_success(
    s3_env: S3Server, s3_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    src = tmp_path / "d"
    _make_tree(src)
    storage.fetch(storage.put(src, f"s3://{s3_bucket}/d"), tmp_path / "dl")
    assert "stored" in caplog.text and "fetched" in caplog.text
    assert s3_env.access_key not in caplog.text and s3_env.secret_key not in caplog.text


@pytest.mark.s3
def test_s3_upload_failure_leaves_no_object(
    s3_env: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_env.client()
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(4096))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SIX_MIB + 1))
    client.put_object(s3_bucket, "keep/big.bin", io.BytesIO(b"previous"), 8)
    _fail_reading(monkeypatch, "small.bin", good=100)
    with pytest.raises(StorageError, match="small.bin"):
        storage.put(small, f"s3://{s3_bucket}/small.bin")
    # Multipart: the first 5 MiB part is sent, then reading fails; the upload is aborted.
    _fail_reading(monkeypatch, "big.bin", good=5 * 1024 * 1024 + 10)
    with pytest.raises(StorageError, match="big.bin"):
        storage.put(big, f"s3://{s3_bucket}/big.bin")
    with pytest.raises(StorageError):
        storage.put(big, f"s3://{s3_bucket}/keep/big.bin")
    names = [o.object_name for o in client.list_objects(s3_bucket, recursive=True)]
    assert names == ["keep/big.bin"]
    assert client.get_object(s3_bucket, "keep/big.bin").read() == b"previous"


@pytest.mark.s3
def test_s3_directory_upload_failure_rolls_back(
    s3_env: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "model"
    _make_tree(src)
    _fail_reading(monkeypatch, "variables.index", good=5)  # after assets/ and fingerprint.pb
    with pytest.raises(StorageError) as err:
        storage.put(src, f"s3://{s3_bucket}/model")
    assert "rolled back" in str(err.value)
    assert list(s3_env.client().list_objects(s3_bucket, recursive=True)) == []
    assert not storage.exists(f"s3://{s3_bucket}/model")


@pytest.mark.s3
def test_s3_directory_upload_checks_sources_first(s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "model"
    _make_tree(src)
    (src / "variables" / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(InvalidInputError, match="dangling"):
        storage.put(src, f"s3://{s3_bucket}/model")
    assert not storage.exists(f"s3://{s3_bucket}/model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="empty directory"):
        storage.put(empty, f"s3://{s3_bucket}/empty")


@pytest.mark.s3
@pytest.mark.parametrize(
    ("mode", "needle"),
    [("broken", "failed"), ("short", "incomplete"), ("corrupt", "corrupt")],
)
def test_s3_download_failure_leaves_no_file(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, needle: str
) -> None:
    from urllib3.exceptions import ProtocolError

    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(50_000))
    uri = storage.put(src, f"s3://{s3_bucket}/m.bin")
    real = storage._stream_to_file

    def fake(response, fh, hasher):  # type: ignore[no-untyped-def]
        data = response.read(decode_content=False)
        if mode == "broken":
            fh.write(data[:1000])
            raise ProtocolError("Connection broken: IncompleteRead (injected)")
        if mode == "short":
            data = data[:-10]
        if mode == "corrupt":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        fh.write(data)
        hasher.update(data)
        return len(data)

    monkeypatch.setattr(storage, "_stream_to_file", fake)
    dl = tmp_path / "dl"
    with pytest.raises(StorageError, match=needle):
        storage.fetch(uri, dl)
    assert _leftovers(dl) == []
    # An earlier complete download stays as it was.
    monkeypatch.setattr(storage, "_stream_to_file", real)
    storage.fetch(uri, dl)
    monkeypatch.setattr(storage, "_stream_to_file", fake)
    with pytest.raises(StorageError):
        storage.fetch(uri, dl)
    assert _leftovers(dl) == ["m.bin"] and (dl / "m.bin").read_bytes() == src.read_bytes()


@pytest.mark.s3
def test_s3_directory_download_failure_is_atomic(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "model"
    _make_tree(src)
    uri = storage.put(src, f"s3://{s3_bucket}/model")
    real = storage._stream_to_file
    calls = {"n": 0}

    def fails_third(response, fh, hasher):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device (injected)")
        return real(response, fh, hasher)

    monkeypatch.setattr(storage, "_stream_to_file", fails_third)
    dl = tmp_path / "dl"
    with pytest.raises(StorageError, match="No space left"):
        storage.fetch(uri, dl)
    assert _leftovers(dl) == []


# --------------------------------------------------------------------------- KFP's store


def test_kfp_store_addresses_newest_release_first() -> None:
    from kfedge.s3 import _kfp_store_candidates

    found = _kfp_store_candidates()
    assert found[0] == "seaweedfs.kubeflow:9000"  # KFP 2.16+
    assert "seaweedfs.kubeflow:8333" in found  # the port profile namespaces may reach
    assert found[-1] == "minio-service.kubeflow:9000"  # KFP 2.14 / 2.15
    assert len(found) == len(set(found))


@pytest.mark.s3
def test_in_a_pod_without_endpoint_the_kfp_store_is_used(
    s3_bucket: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No endpoint variable: inside a pod, the first of KFP's store addresses that answers."""
    from kfedge import s3

    (closed,) = free_ports(1)
    monkeypatch.setattr(
        s3, "_kfp_store_candidates", lambda: [f"127.0.0.1:{closed}", s3_env.endpoint]
    )
    s3.kfp_object_store.cache_clear()
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(StorageError, match="no S3 endpoint configured"):
        s3.S3Config.from_env()  # outside a pod: never guessed
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    try:
        cfg = s3.S3Config.from_env()
        assert cfg.url == s3_env.endpoint_url and "KFP's object store" in cfg.env_var
        src = tmp_path / "f.bin"
        src.write_bytes(b"through KFP's store")
        uri = storage.put(src, f"s3://{s3_bucket}/f.bin")
        assert storage.fetch(uri, tmp_path / "dl").read_bytes() == b"through KFP's store"
    finally:
        s3.kfp_object_store.cache_clear()
