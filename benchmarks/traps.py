"""Section: the measuring traps that ``kfedge.evaluate`` avoids, demonstrated on this machine.

* **Spinning.** Two ONNX Runtime sessions timed run by run in turn (A, B, A, B, ...) with
  intra-op spinning on vs off, against each timed alone in a block.
* **TensorFlow in the same process.** ORT timed in this process (TensorFlow loaded, idle / busy
  in a background thread) vs alone in a subprocess (with and without TensorFlow busy in this
  process, which tells process-level interference from plain CPU contention).

Each is shown on the sample model and, when the side-by-side section ran, on its first
real-size model (its FP32 ONNX and kfedge's ``onnx-int8-static`` file).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    interleaved,
    log,
    median,
    percentiles,
    run_json_child,
)


@dataclass
class TrapsConfig:
    """Parameters of the traps benchmark.

    Attributes:
        rounds: Interleaved rounds of every comparison.
        latency_runs: Timed runs per block for a real-size model.
        small_runs: Timed runs per block for the tiny sample model.
        warmup: Untimed runs before each block.
        trap_threads: Threads of the spinning and TensorFlow-in-process demonstrations.
    """

    rounds: int = 3
    latency_runs: int = 200
    small_runs: int = 2000
    warmup: int = 20
    trap_threads: int = 2


# -- spinning --------------------------------------------------------------------------------
def spinning_trap(
    models: list[Path], threads: int, rounds: int, runs: int, warmup: int
) -> dict[str, Any]:
    """Two ORT sessions: in blocks vs run by run in turn, spinning on vs off.

    Each setting runs in a fresh subprocess without TensorFlow.

    Returns:
        ``{"models", "threads", "cells": {"block/spin-on": {"fp32": median p50, "int8": ...},
        ...}, "rounds", "ratio": {"spin-on": alternate/block, "spin-off": ...}}`` (ratios:
        median over the two models of the median p50 ratio); ``fp32`` / ``int8`` name the
        first and second model.
    """
    role = {str(models[0]): "fp32", str(models[1]): "int8"}
    cells: dict[str, dict[str, list[float]]] = {}
    combos = [(mode, spin) for mode in ("block", "alternate") for spin in (True, False)]
    for r in range(rounds):
        for mode, spin in interleaved(combos, r):
            key = f"{mode}/spin-{'on' if spin else 'off'}"
            args = [mode, *map(str, models), "--threads", str(threads), "--runs", str(runs)]
            args += ["--warmup", str(warmup)] + (["--spinning"] if spin else [])
            res = run_json_child("benchmarks.child", args)
            for m, p in res["models"].items():
                cells.setdefault(key, {}).setdefault(role[m], []).append(p["p50"])
    med = {k: {m: median(v) for m, v in d.items()} for k, d in cells.items()}
    ratio = {}
    for spin in ("on", "off"):
        per_model = [
            med[f"alternate/spin-{spin}"][m] / med[f"block/spin-{spin}"][m]
            for m in ("fp32", "int8")
        ]
        ratio[f"spin-{spin}"] = median(per_model)
    return {
        "models": [Path(m).name for m in models],
        "threads": threads,
        "cells": med,
        "rounds": cells,
        "ratio": ratio,
    }


# -- TensorFlow in the same process ------------------------------------------------------------
class TFBusy:
    """A background thread that keeps TensorFlow busy (a Keras model's forward passes)."""

    def __init__(self, keras_model_path: Path, batch: int = 8) -> None:
        from kfedge.models import load_keras

        self._model = load_keras(keras_model_path)
        shape = [batch, *[int(d) for d in self._model.inputs[0].shape[1:]]]
        self._x = np.random.default_rng(0).random(shape, dtype=np.float32)
        self._model(self._x, training=False)  # build and warm up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.steps = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._model(self._x, training=False)
            self.steps += 1

    def __enter__(self) -> TFBusy:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # let it reach a steady state
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


#: Where the TF-process trap times ORT, in the order the section explains them (1)-(4).
TF_SETTINGS = (
    "subprocess, TF idle here",
    "in-process, TF loaded idle",
    "in-process, TF busy",
    "subprocess, TF busy here",
)


def tf_process_trap(
    model: Path, busy_model: Path, threads: int, rounds: int, runs: int, warmup: int
) -> dict[str, Any]:
    """ORT latency of ``model``: subprocess alone vs in this (TensorFlow) process, idle and busy.

    Returns:
        ``{"cells": {setting: median p50}, "rounds": {...}, "ratio": {setting: vs alone}}``.
    """
    from benchmarks.child import time_block
    from kfedge.runners import load_runner

    settings = list(TF_SETTINGS)
    busy = TFBusy(busy_model)
    vals: dict[str, list[float]] = {s: [] for s in settings}
    args = [
        "block",
        str(model),
        "--threads",
        str(threads),
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
    ]
    for r in range(rounds):
        for s in interleaved(settings, r):
            if s.startswith("subprocess"):
                if "busy" in s:
                    with busy:
                        res = run_json_child("benchmarks.child", args)
                else:
                    res = run_json_child("benchmarks.child", args)
                vals[s].append(res["models"][str(model)]["p50"])
                continue
            runner = load_runner(model, threads=threads, spinning=False)
            spec = runner.inputs[0]
            x = np.random.default_rng(0).random(
                [1, *[int(d) for d in spec.shape[1:]]], dtype=np.float32
            )
            try:
                if "busy" in s:
                    with busy:
                        t = time_block(runner, x, runs, warmup)
                else:
                    time.sleep(0.2)
                    t = time_block(runner, x, runs, warmup)
            finally:
                runner.close()
            vals[s].append(percentiles(t)["p50"])
    cells = {s: median(v) for s, v in vals.items()}
    alone = cells[settings[0]]
    return {
        "model": Path(model).name,
        "threads": threads,
        "cells": cells,
        "rounds": vals,
        "ratio": {s: cells[s] / alone for s in settings},
        "tf_busy_steps": busy.steps,
    }


# -- the section -----------------------------------------------------------------------------
def run(
    cfg: TrapsConfig,
    sample_onnx: Path,
    sample_onnx_int8: Path,
    sample_keras: Path,
    real: tuple[str, Path, Path, Path] | None = None,
) -> dict[str, Any]:
    """The whole section.

    Args:
        cfg: Parameters.
        sample_onnx: The sample's FP32 ONNX model (file or candidate directory).
        sample_onnx_int8: The sample's ORT static INT8 model (the spinning pair's partner).
        sample_keras: The sample's Keras baseline (the TensorFlow busy load).
        real: ``(label, fp32 onnx, int8 onnx, keras model)`` of a real-size model, or None.

    Returns:
        ``{"config", "spinning": [...], "tf_process": [...]}``.
    """
    from kfedge.candidate import model_path

    label = "sample mobilenet_tiny 32x32"
    pairs = [(label, [model_path(sample_onnx), model_path(sample_onnx_int8)], cfg.small_runs)]
    tf_models = [(label, model_path(sample_onnx), sample_keras, cfg.small_runs)]
    if real is not None:
        rlabel, fp32, int8, keras_path = real
        pairs.append((rlabel, [Path(fp32), Path(int8)], cfg.latency_runs))
        tf_models.append((rlabel, Path(fp32), Path(keras_path), cfg.latency_runs))
    out: dict[str, Any] = {"config": dict(cfg.__dict__), "spinning": [], "tf_process": []}
    for lab, models, runs in pairs:
        log(f"spinning trap: {lab}")
        res = spinning_trap(models, cfg.trap_threads, cfg.rounds, runs, cfg.warmup)
        out["spinning"].append({"label": lab, **res})
    for lab, model, busy_model, runs in tf_models:
        log(f"TensorFlow-in-process trap: {lab}")
        res = tf_process_trap(model, busy_model, cfg.trap_threads, cfg.rounds, runs, cfg.warmup)
        out["tf_process"].append({"label": lab, **res})
    return out
