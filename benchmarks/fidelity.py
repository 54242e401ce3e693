"""Section: are the latencies ``kfedge run`` reports the ones the files really have?

1. A real-size model (MobileNetV2-224, random weights) and 64 random images go through
   ``kfedge run --techniques fp32-onnx,ptq-int8,onnx-int8-static,ptq-fp16,ptq-dynamic
   --no-deploy`` (kfp.local: the loop's fine-tuning and conversion run concurrently, then the
   benchmark step times every candidate side by side).
2. Afterwards, on the quiet machine, every file the benchmark step timed is timed again
   *alone*: one fresh process per file (:mod:`benchmarks.child`, no TensorFlow), one file at a
   time, with the thread count the step used, repeated in a rotating order; the median of
   the repeats' p50s is the file's alone figure.
3. Each reported p50 is compared with its alone figure: the goal is every one within
   :attr:`FidelityConfig.tolerance` (15 %).
4. A dense pruned copy of the baseline (half of every kernel's smallest weights set to zero,
   stored dense: the same arithmetic) is exported to ONNX and timed side by side with the
   baseline's ONNX export by :func:`kfedge.sidebyside.time_side_by_side`: its latency ratio
   must read 1.00x within its interval (a tie).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import models as bmodels
from benchmarks.common import ROOT, child_env, log, median, run_json_child
from benchmarks.e2e import kfedge_command

#: The techniques of the issue's measurement (kfedge adds its FP32 TFLite reference).
TECHNIQUES = ("fp32-onnx", "ptq-int8", "onnx-int8-static", "ptq-fp16", "ptq-dynamic")


@dataclass
class FidelityConfig:
    """Parameters of the fidelity section.

    Attributes:
        model: Key of :data:`benchmarks.models.MODELS`.
        techniques: What ``kfedge run`` applies.
        images: Random images in the run's dataset (kfedge splits them).
        repeats: Times every file is timed alone (rotating order).
        budget_s: Seconds of timed runs per file and repeat.
        warmup: Untimed runs before each alone block.
        tolerance: Largest accepted |reported / alone - 1|.
        dense_rounds: Interleaved rounds of the dense-pruned-copy comparison.
        dense_sparsity: Fraction of every kernel zeroed in the dense pruned copy.
        timeout_s: Limit of the ``kfedge run``.
    """

    model: str = "mobilenetv2-224"
    techniques: tuple[str, ...] = TECHNIQUES
    images: int = 64
    repeats: int = 3
    budget_s: float = 3.0
    warmup: int = 20
    tolerance: float = 0.15
    dense_rounds: int = 9
    dense_sparsity: float = 0.5
    timeout_s: float = 45 * 60

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return {**self.__dict__, "techniques": list(self.techniques)}


def random_npz(s: bmodels.ModelSpec, path: Path, n: int, seed: int = 0) -> Path:
    """``n`` uniform [-1, 1] images with labels over the first 4 classes, as ``x`` / ``y``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, *s.input_shape)).astype(np.float32)
    y = (np.arange(n) % min(4, s.classes)).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return path


def kfedge_run(
    model: Path, data: Path, out: Path, cfg: FidelityConfig
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """``kfedge run ... --no-deploy`` as a user types it.

    Returns:
        ``(run facts, report.json, timings.json)``; the last two None when the run wrote none.
    """
    args = ["run", "--model", str(model), "--data", str(data)]
    args += ["--techniques", ",".join(cfg.techniques), "--no-deploy", "--output-dir", str(out)]
    cmd = [*kfedge_command(), *args]
    log("fidelity: " + " ".join(cmd))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=cfg.timeout_s
        )
        rc, text = proc.returncode, (proc.stdout or "") + (proc.stderr or "")
    except subprocess.TimeoutExpired as exc:
        rc, text = None, f"timed out after {cfg.timeout_s:.0f} s: {exc}"
    facts = {
        "command": "kfedge run --model MODEL.keras --data IMAGES.npz --techniques "
        + ",".join(cfg.techniques)
        + " --no-deploy",
        "seconds": round(time.perf_counter() - t0, 1),
        "returncode": rc,
        "tail": [ln for ln in text.splitlines() if ln.strip()][-8:],
    }
    latest = out / "latest"
    report = latest / "report.json"
    timings = latest / "timings.json"
    rep = json.loads(report.read_text()) if report.is_file() else None
    tim = json.loads(timings.read_text()) if timings.is_file() else None
    return facts, rep, tim


def time_alone(files: dict[str, str], threads: int, cfg: FidelityConfig) -> dict[str, Any]:
    """Every file timed alone: one fresh process per file and repeat, rotating order.

    Returns:
        ``{name: {"p50", "repeats_p50"}}`` (ms).
    """
    names = list(files)
    per: dict[str, list[float]] = {n: [] for n in names}
    for r in range(cfg.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            log(f"fidelity: timing {name} alone ({r + 1}/{cfg.repeats})")
            time.sleep(0.5)
            args = ["block", files[name], "--threads", str(threads), "--runs", "100000"]
            args += ["--warmup", str(cfg.warmup), "--budget", str(cfg.budget_s)]
            res = run_json_child("benchmarks.child", args)
            per[name].append(float(res["models"][files[name]]["p50"]))
    return {n: {"p50": median(v), "repeats_p50": v} for n, v in per.items()}


def compare(
    report: dict[str, Any], timings: dict[str, Any], alone: dict[str, Any], tolerance: float
) -> list[dict[str, Any]]:
    """Rows: each timed candidate's reported p50 against its alone figure."""
    rows_by = {r["name"]: r for r in report.get("candidates", [])}
    out = []
    for name, t in timings["models"].items():
        row = rows_by.get(name, {})
        reported = (row.get("latency_ms") or {}).get("p50", t["p50_ms"])
        ci = (row.get("latency_ms") or {}).get("p50_ci") or t.get("p50_ci_ms")
        a = alone[name]["p50"]
        dev = reported / a - 1.0
        out.append(
            {
                "name": name,
                "format": t["format"],
                "reported_p50_ms": reported,
                "reported_p50_ci_ms": ci,
                "alone_p50_ms": a,
                "alone_repeats_p50_ms": alone[name]["repeats_p50"],
                "deviation": dev,
                "within": abs(dev) <= tolerance,
                "selected": bool(row.get("selected")),
                "verdict": row.get("latency_verdict"),
            }
        )
    return out


def dense_pruned_copy(keras_path: Path, out: Path, sparsity: float) -> tuple[Path, float]:
    """The baseline with the smallest ``sparsity`` of every kernel's weights set to zero.

    Stored dense (no sparse format), so the arithmetic is the baseline's. Runs in a child
    process (TensorFlow stays out of this one).

    Returns:
        ``(path, measured sparsity of the kernels)``.
    """
    code = f"""
import json, sys
import numpy as np
from kfedge.models import load_keras, save_keras
m = load_keras({str(keras_path)!r})
zero = total = 0
for layer in m.layers:
    ws = layer.get_weights()
    if not ws or ws[0].ndim < 2:
        continue
    k = ws[0]
    cut = np.quantile(np.abs(k), {sparsity})
    ws[0] = np.where(np.abs(k) <= cut, 0.0, k).astype(k.dtype)
    zero += int((ws[0] == 0).sum()); total += k.size
    layer.set_weights(ws)
save_keras(m, {str(out)!r})
print(json.dumps({{"sparsity": zero / max(total, 1)}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"dense pruned copy failed: {last}")
    return out, float(json.loads(proc.stdout.strip().splitlines()[-1])["sparsity"])


def dense_check(
    keras_path: Path, data_dir: Path, work: Path, cfg: FidelityConfig
) -> dict[str, Any]:
    """The dense pruned copy against the baseline, both exported to ONNX, side by side."""
    from kfedge import stats, techniques
    from kfedge.candidate import model_path
    from kfedge.data import load_split
    from kfedge.sidebyside import time_side_by_side

    pruned, sparsity = dense_pruned_copy(
        keras_path, work / "dense-pruned.keras", cfg.dense_sparsity
    )
    files = {}
    for name, src in (("baseline", keras_path), ("dense-pruned-50", pruned)):
        techniques.apply("fp32-onnx", src, data_dir, {}, work / name)
        files[name] = str(model_path(work / name))
    x, _ = load_split(data_dir, "eval", limit=1)
    sbs = time_side_by_side(files, x[:1], rounds=cfg.dense_rounds, round_budget_s=1.0)
    est = sbs.ratio("dense-pruned-50", "baseline")
    return {
        "sparsity": sparsity,
        "format": "onnx",
        "threads": sbs.threads,
        "rounds": sbs.rounds,
        "p50_ms": {n: t.p50_ms for n, t in sbs.models.items()},
        "ratio": est.ratio,
        "ratio_ci": [est.low, est.high],
        "verdict": stats.compare_ratio(est),
    }


def _split_dataset(s: bmodels.ModelSpec, work: Path) -> Path:
    """A small split dataset for the dense check's exports (their input sample)."""
    return bmodels.random_dataset(s, work / "split", 8)


def run(work: Path, cfg: FidelityConfig) -> dict[str, Any]:
    """The whole section; see the module docstring.

    Returns:
        ``{"config", "model", "label", "run", "threads", "usable_cpus", "rounds",
        "rows", "within", "dense"}``.
    """
    s = bmodels.spec(cfg.model)
    work.mkdir(parents=True, exist_ok=True)
    keras_path = work / "model" / f"{s.key}.keras"
    if not keras_path.is_file():
        log(f"fidelity: building {s.label} (weights=None)")
        bmodels.build(s, keras_path)
    data = random_npz(s, work / "images.npz", cfg.images)
    out_dir = work / "run"
    shutil.rmtree(out_dir, ignore_errors=True)
    facts, report, timings = kfedge_run(keras_path, data, out_dir, cfg)
    result: dict[str, Any] = {
        "config": cfg.to_dict(),
        "model": s.key,
        "label": s.label,
        "run": facts,
    }
    if report is None or timings is None:
        result["error"] = "the run wrote no report or no side-by-side timings"
        return result
    files = {n: t["path"] for n, t in timings["models"].items()}
    alone = time_alone(files, int(timings["threads"]), cfg)
    rows = compare(report, timings, alone, cfg.tolerance)
    result.update(
        {
            "threads": timings["threads"],
            "usable_cpus": timings["usable_cpus"],
            "rounds": timings["rounds"],
            "selected": report.get("selected"),
            "reason": report.get("reason"),
            "rows": rows,
            "within": all(r["within"] for r in rows),
            "worst_deviation": max((abs(r["deviation"]) for r in rows), default=None),
        }
    )
    try:
        result["dense"] = dense_check(keras_path, _split_dataset(s, work), work / "dense", cfg)
    except Exception as exc:  # noqa: BLE001 - the table says why
        result["dense"] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    return result
