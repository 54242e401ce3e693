"""Open report.html in headless Chromium, offline: DOM, console errors, network requests."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kfedge.report import build_report
from kfedge.select import select

pytestmark = pytest.mark.browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium is needed for the HTML report test (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg + "; CI must install it")
    pytest.skip(msg)


class _CDP:
    """A tiny DevTools-protocol client over one page's websocket."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        end = time.time() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.time() > end:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return res["result"].get("value")


def _ev(name: str, technique: str, acc: float, p50: float, size: int) -> dict[str, Any]:
    return {
        "name": name,
        "technique": technique,
        "format": "tflite",
        "accuracy": acc,
        "latency_ms": {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5},
        "size_bytes": size,
        "size_gzip_bytes": int(size * 0.8),
        "threads": 2,
    }


@pytest.fixture
def report_html(tmp_path: Path) -> Path:
    evals = [
        _ev("fp32-tflite", "fp32", 0.990, 10.0, 80_000),
        _ev("ptq-int8", "ptq-int8", 0.970, 4.0, 22_000),
        _ev("ptq-fp16", "ptq-fp16", 0.989, 9.0, 41_000),
        _ev("qat-int8 <b>&", "qat-int8", 0.988, 4.5, 22_500),
    ]
    # SYNTHETIC side-by-side timings (nothing is timed): the page then has error bars
    from timings_kit import make_timings

    timings = make_timings({e["name"]: e["latency_ms"]["p50"] for e in evals})
    sel = select(evals, {"max_accuracy_drop": 0.01}, timings=timings)
    return build_report(evals, tmp_path / "report", selection=sel, timings=timings)["html"]


def test_report_renders_offline_without_errors(report_html: Path, tmp_path: Path):
    chromium = _chromium()
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            # no network: every proxied request goes to a closed port
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.time() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, "chromium exited before opening DevTools"
            assert time.time() < end, "chromium did not open DevTools within 30 s"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        pages = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(p for p in pages if p["type"] == "page")
        cdp = _CDP(page["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Network", "Page"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", url=report_html.as_uri())
        cdp.wait_for("Page.loadEventFired")

        dom = cdp.evaluate(
            """JSON.stringify({
              chart: !!document.querySelector('svg.chart'),
              pareto: document.querySelectorAll('svg.chart polyline.pareto').length,
              points: document.querySelectorAll('svg.chart .point').length,
              errorbars: document.querySelectorAll('svg.chart path.errorbar').length,
              measurement: document.querySelector('#measurement').textContent,
              baseline: document.querySelectorAll('svg.chart .point.baseline').length,
              selectedRing: document.querySelectorAll('svg.chart circle.selected').length,
              chartWidth: document.querySelector('svg.chart').getBoundingClientRect().width,
              sizes: document.querySelectorAll('svg.sizes rect.bar').length,
              rows: document.querySelectorAll('table#candidates tbody tr').length,
              selectedRow: document.querySelector('table#candidates tr.selected td').textContent,
              names: [...document.querySelectorAll('table#candidates tbody tr td:first-child')]
                       .map(td => td.textContent),
              injected: document.querySelectorAll('td b').length,
              reason: document.querySelector('#selection').textContent,
            })"""
        )
        dom = json.loads(dom)
        assert dom["chart"] and dom["pareto"] == 1
        assert dom["points"] == 4 and dom["baseline"] == 1 and dom["selectedRing"] == 1
        assert dom["errorbars"] == 4  # the p50 interval of every timed candidate
        assert "8 interleaved rounds" in dom["measurement"]
        assert dom["chartWidth"] > 300
        assert dom["sizes"] == 8  # raw + gzip per candidate
        assert dom["rows"] == 4
        assert dom["selectedRow"] == "qat-int8 <b>& (selected)"  # shown as text, not markup
        assert dom["injected"] == 0
        assert "Selected: qat-int8 <b>& — the fastest of" in dom["reason"]

        shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = tmp_path / "report.png"
        png.write_bytes(base64.b64decode(shot["data"]))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

        time.sleep(0.3)  # let late console messages arrive
        cdp.evaluate("1")
        errors = [
            e
            for e in cdp.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ]
        assert errors == []
        requests = [
            e["params"]["request"]["url"]
            for e in cdp.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        assert requests == [report_html.as_uri()]  # the page itself, nothing else
        cdp.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
