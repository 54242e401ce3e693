"""Test helpers shared by the tests of deploy, submit and the manifests.

* :class:`FakeJsonApi`: a small JSON HTTP server on 127.0.0.1 that records every request and
  lets a subclass answer it: the base of the FAKE Kubernetes API (``test_deploy.py``, reached
  through :meth:`FakeJsonApi.kubeconfig`) and the FAKE Kubeflow Pipelines API
  (``test_submit.py``). Nothing here is a real cluster.
* :func:`crd_validator`: a JSON-schema validator for a KServe CRD version (from the reference
  specs, where the workspace has them).
"""

from __future__ import annotations

import functools
import json
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Request:
    """One request a fake API received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body or "json" not in self.headers.get("content-type", ""):
            return None
        return json.loads(self.body)


class FakeJsonApi:
    """A JSON HTTP API on 127.0.0.1: records requests, :meth:`answer` decides the reply.

    Attributes:
        requests: Every request received, in order.
        port: The port it listens on.
        url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                req = Request(
                    method=self.command,
                    path=url.path,
                    query={k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                fake.requests.append(req)
                code, obj = fake.answer(req)
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def answer(self, req: Request) -> tuple[int, Any]:
        """The status code and JSON body to reply to ``req`` (subclasses implement it)."""
        raise NotImplementedError

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig whose cluster is this fake (bearer token ``fake-token``)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


def _strip_x(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_x(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_strip_x(v) for v in node]
    return node


@functools.lru_cache(maxsize=4)
def crd_validator(reference_dir: Path, file: str, version: str) -> Any:
    """A Draft 7 validator for ``version`` of the KServe CRD in ``reference_dir/kserve/file``."""
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((reference_dir / "kserve" / file).read_text(), Loader=loader)  # noqa: S506
    ver = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return jsonschema.Draft7Validator(_strip_x(ver["schema"]["openAPIV3Schema"]))
