"""Throughput under concurrency: inference workers (one interpreter each) and dynamic batching."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("kserve")


def _fake_run(calls: list[int], delay: float = 0.02) -> Any:
    lock = threading.Lock()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["x"]
        with lock:
            calls.append(len(x))
        time.sleep(delay)
        if np.isnan(x).any():
            raise ValueError("NaN in the batch")
        return {"y": x.reshape(len(x), -1).sum(axis=1, keepdims=True) * 2}

    return run


def _batcher(run: Any, workers: int = 1, size: int = 8, wait: float = 0.05) -> Any:
    from kfedge.serving.batching import DynamicBatcher

    return DynamicBatcher(run, ThreadPoolExecutor(workers), workers, size, wait)


def _run_all(calls: list[int], xs: list[np.ndarray], return_exceptions: bool = False) -> list[Any]:
    """Every ``xs`` request at once through one fake-run batcher; the results in order."""

    async def main() -> list[Any]:
        b = _batcher(_fake_run(calls))
        try:
            reqs = (b.run({"x": x}) for x in xs)
            return await asyncio.gather(*reqs, return_exceptions=return_exceptions)
        finally:
            b.close()

    return asyncio.run(main())


def test_concurrent_requests_run_as_one_batch_and_are_split_back() -> None:
    calls: list[int] = []
    sizes = [1, 2, 1, 3, 1, 1]
    rng = np.random.default_rng(0)
    xs = [rng.random((n, 4), dtype=np.float32) for n in sizes]

    results = _run_all(calls, xs)
    for x, r in zip(xs, results):
        np.testing.assert_allclose(r["y"], x.sum(axis=1, keepdims=True) * 2, rtol=1e-6)
    assert sum(calls) == sum(sizes)
    assert len(calls) < len(sizes), calls  # combined
    assert max(calls) <= 8


def test_a_failing_request_fails_alone() -> None:
    calls: list[int] = []
    xs = [np.ones((1, 4), np.float32) * i for i in range(4)]
    xs[2][0, 0] = np.nan

    results = _run_all(calls, xs, return_exceptions=True)
    assert isinstance(results[2], ValueError)
    for i in (0, 1, 3):
        np.testing.assert_allclose(results[i]["y"], [[8.0 * i]])


def test_requests_of_other_shapes_are_not_mixed() -> None:
    calls: list[int] = []
    xs = [np.ones((1, 4), np.float32), np.ones((1, 3), np.float32), np.ones((2, 4), np.float32)]

    results = _run_all(calls, xs)
    assert [r["y"].tolist() for r in results] == [[[8.0]], [[6.0]], [[8.0], [8.0]]]
    assert sorted(calls) == [1, 3]  # (1x4 + 2x4) together, 1x3 alone


def test_without_wait_a_lone_request_is_not_delayed() -> None:
    calls: list[int] = []

    async def main() -> float:
        b = _batcher(_fake_run(calls, delay=0), wait=0.0)
        try:
            t0 = time.monotonic()
            await b.run({"x": np.ones((1, 4), np.float32)})
            return time.monotonic() - t0
        finally:
            b.close()

    assert asyncio.run(main()) < 0.5 and calls == [1]


@pytest.fixture(scope="module")
def tflite_copy(fp32_tflite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kfedge.candidate import model_path

    dst = tmp_path_factory.mktemp("batch") / "model.tflite"
    shutil.copy(model_path(fp32_tflite), dst)
    return dst


def test_served_model_batches_concurrent_requests_with_the_runner_answers(
    tflite_copy: Path,
) -> None:
    import httpx

    from kfedge.runners import load_runner
    from kfedge.serving.model import EdgeModel
    from kfedge.serving.server import EdgeServer

    model = EdgeModel(
        "digits", tflite_copy, infer_workers=1, max_batch_size=8, max_batch_wait_ms=30
    )
    model.load()
    try:
        app = EdgeServer(model).app
        runner = load_runner(tflite_copy, threads=1)
        name = runner.inputs[0].name
        rng = np.random.default_rng(3)
        xs = [rng.random((1 + i % 2, 32, 32, 1), dtype=np.float32) for i in range(16)]

        async def main() -> list[Any]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                bodies = [
                    {
                        "inputs": [
                            {
                                "name": name,
                                "shape": list(x.shape),
                                "datatype": "FP32",
                                "data": x.ravel().tolist(),
                            }
                        ]
                    }  # fmt: skip
                    for x in xs
                ]
                bad = {"inputs": [{"name": name, "shape": [1, 32, 32], "datatype": "FP32",
                                   "data": [0.0] * 1024}]}  # fmt: skip
                return await asyncio.gather(
                    *(c.post("/v2/models/digits/infer", json=b) for b in [*bodies, bad])
                )

        answers = asyncio.run(main())
        for x, r in zip(xs, answers):
            assert r.status_code == 200, r.text
            got = np.array(r.json()["outputs"][0]["data"]).reshape(len(x), 10)
            np.testing.assert_allclose(got, runner.predict(x), atol=1e-5)
        assert answers[-1].status_code == 400 and "expects shape" in answers[-1].json()["error"]
        assert model.batcher is not None
        assert model.batcher.batches >= 1 and model.batcher.requests > model.batcher.batches
    finally:
        model.stop()


def test_one_interpreter_per_inference_worker(tflite_copy: Path) -> None:
    from kfedge.serving.model import EdgeModel, default_workers

    model = EdgeModel("digits", tflite_copy)
    model.load()
    try:
        assert model.infer_workers == default_workers()
        assert model.runner.describe()["instances"] == model.infer_workers
        assert model._executor._max_workers == model.infer_workers
        assert model.batcher is None  # dynamic batching is opt-in
    finally:
        model.stop()


def test_kfedge_serve_offers_the_server_options() -> None:
    """`kfedge serve` takes what `python -m kfedge.serving` takes (gRPC, workers, batching, TLS)."""
    from kfedge.cli import build_parser
    from kfedge.serving.options import server_kwargs
    from kfedge.serving.server import serve

    args = build_parser().parse_args(
        ["serve", "m.tflite", "--grpc_port", "9001", "--infer_workers", "3",
         "--max_batch_size", "16", "--max_batch_wait_ms", "2", "--ssl_certfile", "c.pem",
         "--ssl_keyfile", "k.pem", "--body_timeout", "5", "--max_inflight", "8"]
    )  # fmt: skip
    kw = server_kwargs(args)
    assert kw["grpc_port"] == 9001 and kw["infer_workers"] == 3 and kw["max_batch_size"] == 16
    assert kw["ssl_certfile"] == "c.pem" and kw["body_timeout"] == 5 and kw["max_inflight"] == 8
    assert set(kw) <= set(inspect.signature(serve).parameters)
    from kfedge.serving.__main__ import build_parser as main_parser

    main_kw = server_kwargs(main_parser().parse_args(["--model_dir", "m"]))
    assert set(main_kw) == set(kw)
