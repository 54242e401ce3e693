"""TFLite runner: held in memory (file changes cannot crash it), a pool for concurrent callers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from kfedge.candidate import model_path
from kfedge.runners import load_runner


@pytest.fixture()
def tflite_copy(fp32_tflite: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model.tflite"
    shutil.copy(model_path(fp32_tflite), dst)
    return dst


def test_truncating_the_file_while_serving_does_not_crash(tflite_copy: Path) -> None:
    # Before: LiteRT mapped the file and a truncated file killed the process with SIGBUS on
    # the next (re)allocation. Run in a subprocess so a crash fails the test, not the suite.
    code = textwrap.dedent(
        f"""
        import numpy as np
        from kfedge.runners import load_runner
        r = load_runner({str(tflite_copy)!r}, threads=1)
        shape = [1 if d is None else d for d in r.inputs[0].shape]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        before = r.predict(x)
        open({str(tflite_copy)!r}, "r+b").truncate(100)
        after = r.predict(np.concatenate([x, x]))  # batch 2: reallocates tensors
        assert np.allclose(after[0], before[0], atol=1e-6), "answer changed"
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")


def test_failed_resize_is_retried_not_left_stale(tflite_copy: Path) -> None:
    r = load_runner(tflite_copy, threads=1)
    slot = r._slots.get()
    r._slots.put(slot)
    real = slot.interp.allocate_tensors
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("allocation failed")
        real()

    slot.interp.allocate_tensors = flaky
    shape = [1 if d is None else d for d in r.inputs[0].shape]
    x = np.zeros([2, *shape[1:]], dtype=np.float32)
    with pytest.raises(RuntimeError):
        r.predict(x)
    assert slot.batch == -1  # not marked as resized
    assert r.predict(x).shape[0] == 2  # the next request resizes again and answers
    assert r.predict(x[:1]).shape[0] == 1


def test_pool_answers_concurrent_callers_consistently(tflite_copy: Path) -> None:
    r = load_runner(tflite_copy, threads=2, instances=2)
    assert r.describe()["instances"] == 2
    shape = [1 if d is None else d for d in r.inputs[0].shape]
    rng = np.random.default_rng(1)
    xs = [rng.random([n, *shape[1:]], dtype=np.float32) for n in (1, 3, 1, 5, 2, 1, 4, 1)]
    expected = [load_runner(tflite_copy, threads=1).predict(x) for x in xs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            for _ in range(20):
                results[i] = r.predict(xs[i])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, exp in enumerate(expected):
        np.testing.assert_allclose(results[i], exp, atol=1e-5)
