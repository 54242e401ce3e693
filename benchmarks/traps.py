"""Section 2: the measuring traps of ARCHITECTURE.md §6, demonstrated on this machine.

* **Real-size model, quantized vs FP32.** tf_keras ``MobileNetV2(alpha=0.35, 96x96x3,
  weights=None)`` — built here, no download — exported to TFLite and ONNX and quantized with the
  library's techniques (TFLite dynamic-range and full INT8; ORT static QDQ per-channel uint8/int8,
  ORT static per-tensor int8/int8, ORT dynamic). Calibration uses random data, so accuracy is not
  meaningful: only latency and size are reported. Every candidate is timed with
  :func:`kfedge.evaluate.evaluate` (a fresh subprocess per candidate), in interleaved rounds.
* **Spinning.** Two ONNX Runtime sessions timed run by run in turn (A, B, A, B, ...) with
  intra-op spinning on vs off, against each timed alone in a block.
* **TensorFlow in the same process.** ORT timed in this process (TensorFlow loaded, idle / busy
  in a background thread) vs alone in a subprocess (with and without TensorFlow busy in this
  process, which tells process-level interference from plain CPU contention).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    Stopwatch,
    fmt,
    interleaved,
    log,
    mb,
    md_table,
    median,
    percentiles,
    ratio_str,
    run_json_child,
    spread,
)


@dataclass
class TrapsConfig:
    """Parameters of the traps benchmark.

    Attributes:
        mobilenet: Build and measure the MobileNetV2 model (off: only the sample ONNX pair).
        alpha: MobileNetV2 width multiplier.
        size: MobileNetV2 input height and width.
        threads: Thread counts for the quantized-vs-FP32 comparison.
        rounds: Interleaved rounds of every comparison.
        latency_runs: Timed runs per block (real-size model).
        small_runs: Timed runs per block for the tiny sample model.
        warmup: Untimed runs before each block.
        calibration_samples: Random calibration samples for the INT8 techniques.
        trap_threads: Threads of the spinning and TensorFlow-in-process demonstrations.
        reuse: Reuse MobileNetV2 model and candidates already in the work directory.
    """

    mobilenet: bool = True
    alpha: float = 0.35
    size: int = 96
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 3
    latency_runs: int = 200
    small_runs: int = 2000
    warmup: int = 20
    calibration_samples: int = 32
    trap_threads: int = 2
    reuse: bool = False


# -- the real-size model ---------------------------------------------------------------------
#: (candidate name, technique, params) of the MobileNetV2 comparison; ONNX ones quantize the
#: exported FP32 ONNX candidate.
MOBILENET_PLAN: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("fp32-tflite", "fp32-tflite", {}),
    ("ptq-dynamic", "ptq-dynamic", {}),
    ("ptq-int8", "ptq-int8", {}),
    ("fp32-onnx", "fp32-onnx", {}),
    ("onnx-int8-static-perchannel-u8s8", "onnx-int8-static", {"per_channel": True}),
    (
        "onnx-int8-static-pertensor-s8s8",
        "onnx-int8-static",
        {"per_channel": False, "activation_type": "int8"},
    ),
    ("onnx-int8-dynamic", "onnx-int8-dynamic", {}),
)
_REFERENCE = {"tflite": "fp32-tflite", "onnx": "fp32-onnx"}


def build_mobilenet(
    work: Path, alpha: float, size: int, samples: int, reuse: bool = False
) -> tuple[Path, Path, int]:
    """MobileNetV2 (random weights) as .keras and a random split dataset for calibration.

    Returns:
        ``(model path, dataset dir, parameter count)``.
    """
    from kfedge import compat
    from kfedge.data import prepare_dataset, save_npz
    from kfedge.models import save_keras

    path = work / "mobilenetv2.keras"
    data = work / "random-dataset"
    keras = compat.keras()
    if reuse and path.is_file() and (data / "dataset.json").is_file():
        from kfedge.models import count_params

        return path, data, int(count_params(path))
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, weights=None, classes=10
    )
    save_keras(model, path)
    rng = np.random.default_rng(0)
    n = max(40, 2 * samples)  # the calibration split gets half
    x = rng.uniform(-1.0, 1.0, size=(n, size, size, 3)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % 10
    raw = save_npz(work / "random.npz", x, y)
    prepare_dataset(raw, data, [size, size, 3], 10, fractions=(0.1, 0.5, 0.4))
    return path, data, int(model.count_params())


def mobilenet_candidates(
    model: Path, data: Path, out: Path, cfg: TrapsConfig
) -> dict[str, dict[str, Any]]:
    """Apply :data:`MOBILENET_PLAN`; record each technique's wall time."""
    from kfedge import techniques
    from kfedge.candidate import META_FILE, load_candidate

    done: dict[str, dict[str, Any]] = {}
    fp32_onnx_dir = out / "fp32-onnx"
    for i, (name, tech, params) in enumerate(MOBILENET_PLAN):
        p = dict(params, name=name)
        if tech in ("ptq-int8", "onnx-int8-static"):
            p["calibration_samples"] = cfg.calibration_samples
        # the ORT quantizers start from the exported FP32 ONNX (no second tf2onnx export)
        source = fp32_onnx_dir if tech.startswith("onnx-int8") else model
        dest = fp32_onnx_dir if tech == "fp32-onnx" else out / f"{i}-{tech}"
        if cfg.reuse and (dest / META_FILE).is_file():
            cand = load_candidate(dest)
            done[name] = {"dir": dest, "format": cand.format, "seconds": cand.stats.get("seconds")}
            continue
        log(f"MobileNetV2: applying {name}")
        with Stopwatch() as sw:
            cand = techniques.apply(tech, source, data, p, dest)
        done[name] = {"dir": dest, "format": cand.format, "seconds": round(sw.seconds, 2)}
    return done


def time_candidates(
    cands: dict[str, dict[str, Any]], data: Path, cfg: TrapsConfig
) -> list[dict[str, Any]]:
    """Time every candidate with :func:`kfedge.evaluate.evaluate` in interleaved rounds.

    Returns:
        Rows with size, median p50 per thread count and the same-round ratio vs the FP32
        reference of the same format.
    """
    from kfedge.evaluate import evaluate

    names = list(cands)
    per: dict[str, dict[int, list[float]]] = {n: {t: [] for t in cfg.threads} for n in names}
    info: dict[str, dict[str, Any]] = {}
    for r in range(cfg.rounds):
        for t in cfg.threads:
            for name in interleaved(names, r):
                log(f"MobileNetV2 round {r + 1}/{cfg.rounds}, {t} thread(s): {name}")
                ev = evaluate(
                    cands[name]["dir"],
                    data,
                    threads=t,
                    isolate=True,
                    latency_runs=cfg.latency_runs,
                    warmup=cfg.warmup,
                    limit=8,
                    time_budget_s=4.0,
                )
                per[name][t].append(ev["latency_ms"]["p50"])
                info[name] = {
                    "format": ev["format"],
                    "size_bytes": ev["size_bytes"],
                    "size_gzip_bytes": ev["size_gzip_bytes"],
                    "peak_rss_mb": ev["peak_rss_mb"],
                }
    rows = []
    for name in names:
        fmt_name = info[name]["format"]
        ref = _REFERENCE[fmt_name]
        row = {
            "name": name,
            **info[name],
            "size_ratio": info[name]["size_bytes"] / info[ref]["size_bytes"],
            "technique_seconds": cands[name]["seconds"],
            "latency": {},
        }
        for t in cfg.threads:
            ratios = [a / b for a, b in zip(per[name][t], per[ref][t])]
            row["latency"][t] = {
                "p50": median(per[name][t]),
                "p50_rounds": per[name][t],
                "spread": spread(per[name][t]),
                "ratio": median(ratios),
            }
        rows.append(row)
    return rows


# -- spinning --------------------------------------------------------------------------------
def spinning_trap(
    models: list[Path], threads: int, rounds: int, runs: int, warmup: int
) -> dict[str, Any]:
    """Two ORT sessions: in blocks vs run by run in turn, spinning on vs off.

    Each setting runs in a fresh subprocess without TensorFlow.

    Returns:
        ``{"models", "threads", "cells": {"block/spin-on": {model: median p50}, ...},
        "ratio": {"spin-on": alternate/block, "spin-off": ...}}`` (ratios: median over the two
        models of the median p50 ratio).
    """
    cells: dict[str, dict[str, list[float]]] = {}
    combos = [(mode, spin) for mode in ("block", "alternate") for spin in (True, False)]
    for r in range(rounds):
        for mode, spin in interleaved(combos, r):
            key = f"{mode}/spin-{'on' if spin else 'off'}"
            args = [mode, *map(str, models), "--threads", str(threads), "--runs", str(runs)]
            args += ["--warmup", str(warmup)] + (["--spinning"] if spin else [])
            res = run_json_child("benchmarks.child", args)
            for m, p in res["models"].items():
                cells.setdefault(key, {}).setdefault(m, []).append(p["p50"])
    med = {k: {m: median(v) for m, v in d.items()} for k, d in cells.items()}
    ratio = {}
    for spin in ("on", "off"):
        per_model = [
            med[f"alternate/spin-{spin}"][str(m)] / med[f"block/spin-{spin}"][str(m)]
            for m in models
        ]
        ratio[f"spin-{spin}"] = median(per_model)
    return {
        "models": [str(m) for m in models],
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


def tf_process_trap(
    model: Path, busy_model: Path, threads: int, rounds: int, runs: int, warmup: int
) -> dict[str, Any]:
    """ORT latency of ``model``: subprocess alone vs in this (TensorFlow) process, idle and busy.

    Returns:
        ``{"cells": {setting: median p50}, "rounds": {...}, "ratio": {setting: vs alone}}``.
    """
    from benchmarks.child import time_block
    from kfedge.runners import load_runner

    settings = [
        "subprocess, TF idle here",
        "in-process, TF loaded idle",
        "in-process, TF busy",
        "subprocess, TF busy here",
    ]
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
        "model": str(model),
        "threads": threads,
        "cells": cells,
        "rounds": vals,
        "ratio": {s: cells[s] / alone for s in settings},
        "tf_busy_steps": busy.steps,
    }


# -- the section -----------------------------------------------------------------------------
def run(
    work: Path, cfg: TrapsConfig, sample_onnx: Path, sample_onnx_int8: Path, sample_keras: Path
) -> dict[str, Any]:
    """The whole section.

    Args:
        work: Scratch directory.
        cfg: Parameters.
        sample_onnx: The sample's FP32 ONNX model (file or candidate directory).
        sample_onnx_int8: The sample's ORT static INT8 model (the spinning pair's partner).
        sample_keras: The sample's Keras baseline (the TensorFlow busy load without MobileNetV2).

    Returns:
        ``{"mobilenet": {...} or None, "spinning": [...], "tf_process": [...]}``.
    """
    from kfedge.candidate import model_path

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "config": {**cfg.__dict__, "threads": list(cfg.threads)},
        "mobilenet": None,
    }
    pairs = [
        (
            "sample mobilenet_tiny 32x32",
            [model_path(sample_onnx), model_path(sample_onnx_int8)],
            cfg.small_runs,
        )
    ]
    tf_models = [
        ("sample mobilenet_tiny 32x32", model_path(sample_onnx), sample_keras, cfg.small_runs)
    ]
    if cfg.mobilenet:
        log(f"building MobileNetV2(alpha={cfg.alpha}, {cfg.size}x{cfg.size}x3, weights=None)")
        keras_path, data, params = build_mobilenet(
            work, cfg.alpha, cfg.size, cfg.calibration_samples, cfg.reuse
        )
        cands = mobilenet_candidates(keras_path, data, work / "mobilenet", cfg)
        rows = time_candidates(cands, data, cfg)
        out["mobilenet"] = {"params": params, "alpha": cfg.alpha, "size": cfg.size, "rows": rows}
        label = f"MobileNetV2 {cfg.alpha} {cfg.size}x{cfg.size}"
        onnx_pair = [
            model_path(cands["fp32-onnx"]["dir"]),
            model_path(cands["onnx-int8-static-perchannel-u8s8"]["dir"]),
        ]
        pairs.append((label, onnx_pair, cfg.latency_runs))
        tf_models.append((label, onnx_pair[0], keras_path, cfg.latency_runs))
    out["spinning"] = []
    for label, models, runs in pairs:
        log(f"spinning trap: {label}")
        res = spinning_trap(models, cfg.trap_threads, cfg.rounds, runs, cfg.warmup)
        out["spinning"].append({"label": label, **res})
    out["tf_process"] = []
    for label, model, busy_model, runs in tf_models:
        log(f"TensorFlow-in-process trap: {label}")
        res = tf_process_trap(model, busy_model, cfg.trap_threads, cfg.rounds, runs, cfg.warmup)
        out["tf_process"].append({"label": label, **res})
    return out


# -- Markdown --------------------------------------------------------------------------------
def mobilenet_markdown(m: dict[str, Any], threads: tuple[int, ...]) -> str:
    """Quantized vs FP32 on the real-size model."""
    header = ["Candidate", "Format"]
    header += [f"p50 ms @{t}t" for t in threads] + [f"ratio vs FP32 @{t}t" for t in threads]
    header += [
        f"spread @{threads[0]}t",
        "Size (MB)",
        "Size ratio",
        "gzip (MB)",
        "Technique time (s)",
    ]
    rows = []
    for r in m["rows"]:
        lat = r["latency"]
        rows.append(
            [r["name"], r["format"]]
            + [fmt(lat[t]["p50"], ".2f") for t in threads]
            + [ratio_str(lat[t]["ratio"]) for t in threads]
            + [
                f"{100 * lat[threads[0]]['spread']:.0f} %",
                fmt(mb(r["size_bytes"]), ".3f"),
                ratio_str(r["size_ratio"]),
                fmt(mb(r["size_gzip_bytes"]), ".3f"),
                fmt(r["technique_seconds"], ".1f"),
            ]
        )
    return md_table(header, rows)


def spinning_markdown(items: list[dict[str, Any]]) -> str:
    """Alternating two sessions vs blocks, spinning on / off."""
    header = [
        "Model pair",
        "Threads",
        "Setting",
        "FP32 p50 (ms)",
        "INT8 p50 (ms)",
        "alternate / block",
    ]
    rows = []
    for it in items:
        a, b = it["models"]
        for spin in ("on", "off"):
            for mode in ("block", "alternate"):
                c = it["cells"][f"{mode}/spin-{spin}"]
                rows.append(
                    [
                        it["label"],
                        it["threads"],
                        f"{mode}, spinning {spin}",
                        fmt(c[a], ".3f"),
                        fmt(c[b], ".3f"),
                        ratio_str(it["ratio"][f"spin-{spin}"]) if mode == "alternate" else "1.00x",
                    ]
                )
    return md_table(header, rows)


def tf_process_markdown(items: list[dict[str, Any]]) -> str:
    """ORT in a TensorFlow process vs alone."""
    header = [
        "Model (FP32 ONNX)",
        "Threads",
        "Where ORT is timed",
        "p50 (ms)",
        "vs subprocess alone",
    ]
    rows = []
    for it in items:
        for s, v in it["cells"].items():
            rows.append([it["label"], it["threads"], s, fmt(v, ".3f"), ratio_str(it["ratio"][s])])
    return md_table(header, rows)
