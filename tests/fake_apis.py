"""Test helpers shared by the tests of deploy, submit and the manifests.

* :class:`FakeJsonApi`: a small JSON HTTP server on 127.0.0.1 that records every request and
  lets a subclass answer it: the base of the FAKE Kubernetes API (``test_deploy.py``, reached
  through :meth:`FakeJsonApi.kubeconfig`) and the FAKE Kubeflow Pipelines API
  (``test_submit.py``). Nothing here is a real cluster.
* :class:`FakeKServe`: the FAKE Kubernetes API for InferenceServices whose status follows what
  KServe's controller writes (stale Ready after an update, the workload's observedGeneration),
  with injectable faults.
* :func:`crd_validator`: a JSON-schema validator for a KServe CRD version (from the reference
  specs, where the workspace has them).
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
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
                send_json(self, code, obj)

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
        return write_kubeconfig(path, self.url)

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


def _strip_x(node: Any) -> Any:
    """The schema for jsonschema, as strict as the API server with ``fieldValidation=Strict``:
    an object schema with ``properties`` refuses other fields unless it preserves unknown
    fields (k8s.io/apiextensions-apiserver structural schemas: unknown fields are pruned, and
    refused under Strict), so a misspelled ``nodeSelektor`` fails here as it fails there."""
    if isinstance(node, dict):
        out = {k: _strip_x(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
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


# ------------------------------------------------------------------ a KServe-like fake API
ISVC_PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
DEPLOY_PREFIX = "/apis/apps/v1/namespaces/"


def _knative(obj: dict[str, Any]) -> bool:
    mode = obj["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode")
    return mode in ("Serverless", "Knative")


def k8s_status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes ``Status`` failure body."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch as the API server does."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class FakeKServe(FakeJsonApi):
    """A FAKE Kubernetes API for InferenceServices (get / create / merge-patch), recorded, whose
    status follows what KServe's controller writes (kserve/kserve
    ``pkg/apis/serving/v1beta1/inference_service_status.go``):

    * ``status.observedGeneration`` is the WORKLOAD's (the predictor Deployment's in
      RawDeployment mode, ``PropagateRawStatus``; the Knative Service's in Serverless mode,
      ``PropagateStatus``), a counter of its own: it starts at ``workload_generation`` (7),
      unrelated to the InferenceService's ``metadata.generation``.
    * After a create, the first ``ready_after - 1`` reads have no Ready condition yet.
    * After an update that changes the spec (the generation moves), the first ``stale_reads``
      reads still show the previous status (Ready=True: the controller has not seen the new
      spec), the next ``rolling_reads`` show the rollout, then it is done.
    * The rollout, in raw deployment mode (RawDeployment / Standard): the predictor Deployment
      ``<name>-predictor`` (served at ``/apis/apps/v1``) has a new generation, observed at
      once by its controller, one updated pod beside the old one (RollingUpdate, 25 % surge,
      none unavailable: kserve ``deployment_reconciler.go`` ``setDefaultDeploymentSpec``),
      and the InferenceService stays **Ready=True** throughout, with the Deployment's moved
      ``observedGeneration``: KServe copies the Deployment's ``Available`` condition, true
      while the old pod serves (``PropagateRawStatus``). (An earlier version of this fake
      showed Ready=Unknown here, which real KServe never does in this mode.)
    * In Serverless mode: a new revision is created but not ready, and Ready is Unknown (the
      Knative Service's ConfigurationsReady is Unknown until the latest revision is ready; kept
      from the earlier fake, not checked against Knative's source: no Knative runs here).
    * An update that changes no spec leaves generation and status alone.

    ``faults`` maps a method to HTTP status codes answered (in turn) instead of the real answer;
    ``deny`` answers every write with that status. ``phases`` records what each read of an
    existing object showed (``creating``, ``stale``, ``rolling``, ``ready``).
    """

    def __init__(
        self,
        ready_after: int = 2,
        url: str = "http://digits.kserve.svc.cluster.local",
        deny: int | None = None,
        never_ready: bool = False,
        stale_reads: int = 2,
        rolling_reads: int = 2,
        faults: dict[str, list[int]] | None = None,
        workload_generation: int = 7,
    ) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.ready_after, self.isvc_url = ready_after, url
        self.deny, self.never_ready = deny, never_ready
        self.stale_reads, self.rolling_reads = stale_reads, rolling_reads
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.workload_generation = workload_generation
        self.phases: list[str] = []
        self._clock = 0

    def _time(self) -> str:
        self._clock += 1
        return f"2026-01-01T00:00:{self._clock:02d}Z"

    def _status(self, obj: dict[str, Any], st: dict[str, Any], ready: str) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        knative = _knative(obj)
        if ready != st.get("ready"):
            st["ready"], st["since"] = ready, self._time()
        status: dict[str, Any] = {
            "observedGeneration": st["workload"],
            "url": f"http://{name}.example.com",
            "conditions": [
                {"type": "PredictorReady", "status": ready, "lastTransitionTime": st["since"]},
                {"type": "Ready", "status": ready, "lastTransitionTime": st["since"]},
            ],
        }
        if ready == "True":
            status["address"] = {"url": self.isvc_url}
        if knative:
            status["components"] = {
                "predictor": {
                    "latestCreatedRevision": f"{name}-predictor-{st['revision']:05d}",
                    "latestReadyRevision": f"{name}-predictor-{st['ready_revision']:05d}",
                }
            }
        return status

    def _read(self, obj: dict[str, Any], st: dict[str, Any]) -> None:
        st["reads"] += 1
        if self.never_ready:
            obj["status"] = {
                "conditions": [
                    {
                        "type": "PredictorReady",
                        "status": "False",
                        "reason": "ImagePullBackOff",
                        "message": "Back-off pulling image",
                    },
                    {"type": "Ready", "status": "False"},
                ]
            }
            return
        if st["phase"] == "creating":
            if st["reads"] >= self.ready_after:
                st["phase"] = "ready"
                obj["status"] = self._status(obj, st, "True")
            self.phases.append("creating" if st["phase"] == "creating" else "ready")
            return
        if st["phase"] == "updating":
            if st["reads"] <= self.stale_reads:
                self.phases.append("stale")  # status untouched: the previous spec's
                return
            if st["reads"] <= self.stale_reads + self.rolling_reads:
                if not st["rolled"]:
                    st["rolled"] = True
                    st["workload"] += 1
                    st["revision"] += 1
                    st["surge"] = 1  # the new pod beside the old, not yet available
                obj["status"] = self._status(obj, st, "Unknown" if _knative(obj) else "True")
                self.phases.append("rolling")
                return
            st["ready_revision"] = st["revision"]
            st["surge"] = 0
            st["phase"] = "ready"
            obj["status"] = self._status(obj, st, "True")
        self.phases.append("ready")

    def _deployment(self, obj: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
        """The predictor Deployment as its controller reports it (raw mode only)."""
        ready = st["phase"] == "ready" and not self.never_ready
        status = {
            "observedGeneration": st["workload"],
            "replicas": 1 + st["surge"],
            "updatedReplicas": 1,
            "availableReplicas": (1 if ready or st["surge"] else 0),
            "readyReplicas": (1 if ready or st["surge"] else 0),
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": obj["metadata"]["name"] + "-predictor",
                "namespace": obj["metadata"]["namespace"],
                "generation": st["workload"],
            },
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": {"app": f"isvc.{obj['metadata']['name']}-predictor"}},
                "template": {"metadata": {}, "spec": {"containers": []}},
            },
            "status": status,
        }

    def answer(self, req: Request) -> tuple[int, Any]:
        method, path, body = req.method, req.path, req.json
        if path.startswith(DEPLOY_PREFIX) and req.method == "GET":
            ns, _, rest = path[len(DEPLOY_PREFIX) :].partition("/deployments/")
            key = (ns, rest.removesuffix("-predictor"))
            if not rest.endswith("-predictor") or key not in self.objects:
                return 404, k8s_status(404, "NotFound", f'deployments.apps "{rest}" not found')
            if _knative(self.objects[key]):
                return 404, k8s_status(404, "NotFound", f'deployments.apps "{rest}" not found')
            return 200, self._deployment(self.objects[key], self.state[key])
        if not path.startswith(ISVC_PREFIX) or "/inferenceservices" not in path:
            return 404, k8s_status(404, "NotFound", f"no route {path}")
        ns, _, rest = path[len(ISVC_PREFIX) :].partition("/inferenceservices")
        name = rest.strip("/")
        if self.faults.get(method):
            code = self.faults[method].pop(0)
            reason = {409: "Conflict", 429: "TooManyRequests"}.get(code, "InternalError")
            return code, k8s_status(code, reason, f"injected {code}")
        if self.deny and method != "GET":
            return self.deny, k8s_status(
                self.deny,
                "Forbidden",
                f'inferenceservices is forbidden: User "x" cannot '
                f'{method.lower()} resource in namespace "{ns}"',
            )
        obj = self.objects.get((ns, name))
        if method == "GET":
            if obj is None:
                return 404, k8s_status(404, "NotFound", f'inferenceservices "{name}" not found')
            self._read(obj, self.state[(ns, name)])
            return 200, obj
        if method == "POST":
            name = body["metadata"]["name"]
            if (ns, name) in self.objects:
                return 409, k8s_status(409, "AlreadyExists", f'"{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"].update(generation=1, resourceVersion="1", uid="fake-uid")
            self.objects[(ns, name)] = obj
            self.state[(ns, name)] = {
                "phase": "creating",
                "reads": 0,
                "workload": self.workload_generation,
                "revision": 1,
                "ready_revision": 1,
                "rolled": True,
                "surge": 0,
            }
            return 201, obj
        if method == "PATCH":
            if obj is None:
                return 404, k8s_status(404, "NotFound", "not found")
            merged = merge_patch(obj, body)
            if merged.get("spec") != obj.get("spec"):
                merged["metadata"]["generation"] = obj["metadata"]["generation"] + 1
                self.state[(ns, name)].update(phase="updating", reads=0, rolled=False)
            self.objects[(ns, name)] = merged
            return 200, merged
        return 405, k8s_status(405, "MethodNotAllowed", method)


# ------------------------------------------------------------------ a KFP v2beta1 fake API
def _rpc_error(code: int, message: str) -> dict[str, Any]:
    """An error body as KFP's grpc-gateway sends it."""
    return {"error": message, "code": code, "message": message, "details": []}


def _display_name_filter(query: dict[str, str]) -> str | None:
    raw = query.get("filter", "")
    if not raw:
        return None
    preds = json.loads(raw)["predicates"]
    (pred,) = [p for p in preds if p["key"] == "display_name"]
    return pred["stringValue"]


class FakeKfpApi(FakeJsonApi):
    """State and request log of the fake KFP v2beta1 API (not a real cluster)."""

    def __init__(self) -> None:
        super().__init__()
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring: dict[str, dict[str, Any]] = {}
        #: Largest page the recurring-run listing returns (to exercise paging).
        self.page_size_cap = 1000
        self.uploads: list[bytes] = []
        #: States a run reports on successive GETs (the last one repeats).
        self.run_states = ["SUCCEEDED"]
        self.multi_user = False
        self.require_token: str | None = None
        self._n = 0
        self._gets: dict[str, int] = {}

    def new_id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}-{self._n}"

    def calls(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def answer(self, req: Request) -> tuple[int, Any]:
        auth = req.headers.get("authorization")
        if self.require_token and auth != f"Bearer {self.require_token}":
            return 401, {"error": "missing or bad token", "code": 16}
        route = (req.method, req.path)
        parts = req.path.strip("/").split("/")
        if route == ("GET", "/apis/v2beta1/healthz"):
            return 200, {"multi_user": self.multi_user, "commit_sha": "fake"}
        if route == ("GET", "/apis/v2beta1/pipelines"):
            # a namespace lists that namespace's pipelines; none lists the shared ones (the
            # v2beta1 ListPipelines namespace parameter; not checked against the backend source)
            want = _display_name_filter(req.query)
            ns = req.query.get("namespace", "")
            found = [
                p
                for p in self.pipelines.values()
                if p["display_name"] == want and p.get("namespace", "") == ns
            ]
            return 200, {"pipelines": found, "total_size": len(found)} if found else {}
        if route == ("POST", "/apis/v2beta1/pipelines/upload"):
            self.uploads.append(req.body)
            pid = self.new_id("pipeline")
            name = req.query["name"]
            # backend/src/apiserver/server/pipeline_upload_server.go (read on master, commit
            # 0029bf5, not at a release tag): the namespace query parameter, "" = shared
            self.pipelines[pid] = {
                "pipeline_id": pid,
                "display_name": name,
                "namespace": req.query.get("namespace", ""),
            }
            self.versions[pid] = [
                {
                    "pipeline_id": pid,
                    "pipeline_version_id": self.new_id("version"),
                    "display_name": name,
                }
            ]
            return 200, self.pipelines[pid]
        if route == ("POST", "/apis/v2beta1/pipelines/upload_version"):
            self.uploads.append(req.body)
            pid = req.query["pipelineid"]
            ver = {
                "pipeline_id": pid,
                "pipeline_version_id": self.new_id("version"),
                "display_name": req.query["name"],
            }
            self.versions[pid].append(ver)
            return 200, ver
        if (
            req.method == "GET"
            and parts[:3] == ["apis", "v2beta1", "pipelines"]
            and len(parts) == 5
        ):
            newest_first = list(reversed(self.versions.get(parts[3], [])))
            size = int(req.query.get("page_size", 10))
            return 200, {"pipeline_versions": newest_first[:size]}
        if route == ("GET", "/apis/v2beta1/experiments"):
            want = _display_name_filter(req.query)
            found = [e for e in self.experiments.values() if e["display_name"] == want]
            return 200, {"experiments": found} if found else {}
        if route == ("POST", "/apis/v2beta1/experiments"):
            eid = self.new_id("experiment")
            self.experiments[eid] = {**req.json, "experiment_id": eid}
            return 200, self.experiments[eid]
        if route == ("POST", "/apis/v2beta1/runs"):
            rid = self.new_id("run")
            self.runs[rid] = {**req.json, "run_id": rid, "state": "PENDING"}
            return 200, self.runs[rid]
        if req.method == "GET" and parts[:3] == ["apis", "v2beta1", "runs"] and len(parts) == 4:
            rid = parts[3]
            n = self._gets[rid] = self._gets.get(rid, 0) + 1
            state = self.run_states[min(n, len(self.run_states)) - 1]
            run = {**self.runs[rid], "state": state}
            if state == "FAILED":
                run["error"] = {"code": 2, "message": "evaluate on target: OOMKilled"}
            return 200, run
        if parts[:3] == ["apis", "v2beta1", "recurringruns"]:
            return self._recurring(req, parts[3] if len(parts) > 3 else None)
        return 404, {"error": f"fake KFP API has no {req.method} {req.path}"}

    def _recurring(self, req: Request, rest: str | None) -> tuple[int, Any]:
        """The RecurringRunService (backend/api/v2beta1/recurring_run.proto)."""
        if rest is None and req.method == "POST":
            body = req.json
            if not body.get("trigger") or not body.get("display_name"):
                return 400, _rpc_error(3, "trigger and display_name are required")
            rid = self.new_id("recurring")
            self.recurring[rid] = {
                **body,
                "recurring_run_id": rid,
                "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
                "created_at": "2026-01-01T00:00:00Z",
            }
            return 200, self.recurring[rid]
        if rest is None and req.method == "GET":
            items = [
                r
                for r in self.recurring.values()
                if req.query.get("experiment_id") in (None, r.get("experiment_id"))
            ]
            size = min(int(req.query.get("page_size") or 10), self.page_size_cap)
            start = int(req.query.get("page_token") or 0)
            page = items[start : start + size]
            out: dict[str, Any] = {"total_size": len(items)} if items else {}
            if page:
                out["recurringRuns"] = page  # the proto's field name, as the gateway sends it
            if start + size < len(items):
                out["next_page_token"] = str(start + size)
            return 200, out
        rid, _, verb = (rest or "").partition(":")
        if rid not in self.recurring:
            return 404, _rpc_error(5, f"RecurringRun {rid} not found")
        if req.method == "GET" and not verb:
            return 200, self.recurring[rid]
        if req.method == "POST" and verb in ("enable", "disable"):
            self.recurring[rid]["status"] = "ENABLED" if verb == "enable" else "DISABLED"
            return 200, {}
        if req.method == "DELETE" and not verb:
            del self.recurring[rid]
            return 200, {}
        return 404, _rpc_error(5, f"no {req.method} {req.path}")


@pytest.fixture(name="fake_kfp")
def fake_kfp_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeKfpApi, str]]:
    """A fake KFP v2beta1 API on 127.0.0.1 (records requests; runs nothing): ``(api, url)``."""
    for var in ("KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", "/nonexistent/kfedge-test-token")
    api = FakeKfpApi()
    try:
        yield api, api.url
    finally:
        api.close()


def send_json(handler: BaseHTTPRequestHandler, code: int, obj: Any) -> None:
    """Answer ``handler``'s request with status ``code`` and ``obj`` as a JSON body."""
    data = json.dumps(obj).encode()
    handler.send_response(code)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def write_kubeconfig(path: Path, url: str) -> Path:
    """Write a kubeconfig whose one cluster is ``url`` (bearer token ``fake-token``); ``path``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path
