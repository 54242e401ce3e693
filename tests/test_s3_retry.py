"""Transient S3 faults are retried and succeed; user errors fail once (REAL SeaweedFS).

Between kfedge and the SeaweedFS server of ``s3fixtures`` sits a loopback TCP proxy
(:class:`s3fixtures.FaultyProxy`) that resets the first connections, answers ``503 SlowDown``,
or starts listening only after a delay; it counts the connections and requests it saw.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from s3fixtures import FaultyProxy, S3Server

from kfedge import storage
from kfedge.errors import NotFoundError, StorageError, TransientStorageError

pytestmark = pytest.mark.s3


@pytest.fixture()
def faulty_s3(s3_bucket: str, s3_env: S3Server, through):  # noqa: ANN001
    """The bucket, the real S3 server and the fault-injecting proxy factory, together."""
    return s3_bucket, s3_env, through


@pytest.fixture
def through(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Route kfedge's S3 traffic through a FaultyProxy: ``through(faults=2, mode=...)``."""
    proxies: list[FaultyProxy] = []

    def make(faults: int = 0, mode: str = "reset", delay: float = 0.0) -> FaultyProxy:
        proxy = FaultyProxy((s3_env.host, s3_env.port), faults=faults, mode=mode, delay=delay)
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        return proxy

    yield make
    for p in proxies:
        p.close()


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kfedge.retry"]


@pytest.mark.parametrize("mode", ["reset", "slowdown"])
def test_transient_fault_is_retried_and_the_fetch_succeeds(
    mode: str,
    faulty_s3: tuple[str, S3Server, Callable[..., FaultyProxy]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s3_bucket, s3_env, through = faulty_s3
    data = os.urandom(50_000)
    src = tmp_path / "model.tflite"
    src.write_bytes(data)
    storage.put(src, f"s3://{s3_bucket}/m/model.tflite")  # directly, no faults
    proxy = through(faults=2, mode=mode)
    caplog.set_level(logging.WARNING, logger="kfedge.retry")
    if mode == "reset":  # the HEAD of the object is reset
        got = storage.fetch(f"s3://{s3_bucket}/m/model.tflite", tmp_path / "dl")
        assert got.read_bytes() == data
    else:  # the listing of the prefix (a GET, whose 503 carries S3's XML error) is throttled
        got = storage.fetch(f"s3://{s3_bucket}/m/", tmp_path / "dl")
        assert (got / "model.tflite").read_bytes() == data
    assert proxy.broken == 2
    lines = _retries(caplog)
    assert len(lines) == 2, lines  # one line per retry
    assert all("transient" in ln and "retrying in" in ln for ln in lines)
    assert ("SlowDown" if mode == "slowdown" else "Connection reset") in lines[0]
    for secret in (s3_env.access_key, s3_env.secret_key):
        assert secret not in caplog.text


def test_upload_through_reset_connections_succeeds(
    s3_bucket: str,
    s3_env: S3Server,
    through,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    src = tmp_path / "tree"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"pb" * 1000)
    (src / "variables" / "data").write_bytes(os.urandom(20_000))
    proxy = through(faults=3)
    uri = storage.put(src, f"s3://{s3_bucket}/trees/")
    assert proxy.broken == 3
    client = s3_env.client()
    names = sorted(o.object_name for o in client.list_objects(s3_bucket, "trees/", recursive=True))
    assert names == ["trees/tree/saved_model.pb", "trees/tree/variables/data"]
    assert uri == f"s3://{s3_bucket}/trees/tree"


def test_server_listening_only_after_a_delay_is_waited_for(
    faulty_s3: tuple[str, S3Server, Callable[..., FaultyProxy]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connection refused (a server restarting) is transient: the retries bridge 1 s."""
    s3_bucket, s3_env, through = faulty_s3
    s3_env.client().put_object(s3_bucket, "k", __import__("io").BytesIO(b"abc"), 3)
    through(delay=1.0)
    caplog.set_level(logging.WARNING, logger="kfedge.retry")
    assert storage.exists(f"s3://{s3_bucket}/k")
    assert any("cannot reach" in ln for ln in _retries(caplog))


def test_persistent_fault_gives_up_after_the_bound_saying_transient(
    s3_bucket: str,
    through,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KFEDGE_S3_ATTEMPTS", "3")
    proxy = through(faults=-1)
    with pytest.raises(TransientStorageError, match=r"\(transient: gave up after 3 attempts\)$"):
        storage.fetch(f"s3://{s3_bucket}/m/model.tflite", tmp_path / "dl")
    assert proxy.connections == 3  # the first try and two retries, nothing more
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())


def test_missing_key_fails_once(
    s3_bucket: str,
    through,  # noqa: ANN001
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = through()
    caplog.set_level(logging.WARNING, logger="kfedge.retry")
    with pytest.raises(NotFoundError, match="no object or prefix") as err:
        storage.fetch(f"s3://{s3_bucket}/absent/model.tflite", tmp_path / "dl")
    assert not err.value.transient
    assert proxy.count("HEAD", f"/{s3_bucket}/absent/model.tflite") == 1
    assert _retries(caplog) == []


def test_missing_bucket_and_bad_credentials_fail_once(
    s3_env: S3Server,
    through,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = through()
    caplog.set_level(logging.WARNING, logger="kfedge.retry")
    with pytest.raises(NotFoundError, match="bucket 'kfedge-no-such-bucket' does not exist"):
        storage.fetch("s3://kfedge-no-such-bucket/x", tmp_path / "dl")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "WrongSecretForRetryTest")
    with pytest.raises(StorageError, match="access denied") as err:
        storage.exists("s3://kfedge-no-such-bucket/y")
    assert not err.value.transient and "gave up" not in str(err.value)
    assert proxy.count("HEAD", "/kfedge-no-such-bucket/y") == 1
    assert _retries(caplog) == []
    assert "WrongSecretForRetryTest" not in str(err.value) + caplog.text
