"""Reliability: short versions of ``make soak`` (soak, fuzzing, S3 faults, credentials), the
multipart content check, and RELIABILITY.md rendered from its committed results."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_multipart_objects_are_verified_by_content(s3_bucket: str, tmp_path: Path) -> None:
    """Over 5 MiB an upload is multipart (ETag md5-N): checked by content, not only length."""
    from kfedge import storage
    from kfedge.errors import StorageError

    src = tmp_path / "big.bin"
    data = os.urandom(12 * 1024 * 1024 + 123)
    src.write_bytes(data)
    uri = storage.put(src, f"s3://{s3_bucket}/m/big.bin")
    from kfedge.s3 import S3Session

    s3 = S3Session()
    stat = s3.client.stat_object(s3_bucket, "m/big.bin")
    assert stat.etag.strip('"').endswith("-3"), stat.etag  # 5 MiB parts
    sha = hashlib.sha256(data).hexdigest()
    assert stat.metadata.get(storage.SHA256_META) == sha
    got = storage.fetch(uri, tmp_path / "out")
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha
    # the same length and the same stored hash, other bytes: refused, nothing left behind
    bad = bytearray(data)
    bad[7 * 1024 * 1024] ^= 0xFF
    s3.client.put_object(
        s3_bucket,
        "m/big.bin",
        io.BytesIO(bytes(bad)),
        len(bad),
        metadata={storage.SHA256_META: sha},
    )
    dest = tmp_path / "out2"
    with pytest.raises(StorageError, match="corrupt: SHA-256"):
        storage.fetch(uri, dest)
    assert not (dest / "big.bin").exists()
