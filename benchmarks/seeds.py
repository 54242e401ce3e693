"""Section: the seeds' table for the built-in sample — accuracy, latency and size on this machine.

Trains the sample baseline, applies kfedge's techniques to it, adds the hand-written ONNX
Runtime reference (:mod:`benchmarks.references`) and the peers' files (:mod:`benchmarks.peers`)
made from kfedge's FP32 ONNX export, and evaluates every file with
:func:`kfedge.evaluate.evaluate` (accuracy on the eval split; latency timed in a fresh
subprocess per candidate). Latency is measured in several rounds, in a different order each
round, at each thread count; each file's latency ratio is taken against the FP32 model of its
format *in the same round* (:func:`kfedge.stats.ratio_estimate`).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import Stopwatch, interleaved_rounds, log, mb, median, spread

#: What ``make bench`` optimizes on the sample: the default CPU plan, the ONNX and OpenVINO
#: techniques and the tuning searches (section 1's choices carry their sample accuracy here).
DEFAULT_TECHNIQUES = (
    "fp32-tflite",
    "fp32-onnx",
    "ptq-dynamic",
    "ptq-fp16",
    "ptq-int8",
    "onnx-int8-static",
    "onnx-int8-dynamic",
    "qat-int8",
    "prune",
    "cluster",
    "prune-cluster-int8",
    "openvino-int8",
    "tune-onnx-int8",
    "tune-openvino-int8",
)
#: The FP32 reference every file of a format is compared with.
REFERENCE = {"tflite": "fp32-tflite", "onnx": "fp32-onnx", "openvino": "fp32-openvino"}


@dataclass
class SeedsConfig:
    """Parameters of the seeds benchmark.

    Attributes:
        techniques: Techniques to apply to the baseline (the FP32 references are added).
        threads: Thread counts to time every candidate at.
        rounds: Latency rounds (interleaved order).
        latency_runs: Timed batch-1 runs per candidate per round.
        warmup: Untimed runs before each timed block.
        time_budget_s: Time budget of one timed block.
        epochs: Fine-tune epochs of the training techniques (None = technique defaults, as
            ``kfedge run`` uses).
        baseline_epochs: Maximum epochs of the baseline training.
        reference: Add the hand-written ONNX Runtime reference.
        calibration_samples: Calibration samples of the hand-written reference.
    """

    techniques: tuple[str, ...] = DEFAULT_TECHNIQUES
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 3
    latency_runs: int = 300
    warmup: int = 30
    time_budget_s: float = 5.0
    epochs: int | None = None
    baseline_epochs: int = 30
    reference: bool = True
    calibration_samples: int = 256
    extra: dict[str, Any] = field(default_factory=dict)


def technique_list(cfg: SeedsConfig) -> list[str]:
    """The techniques to apply: the FP32 references first, then ``cfg.techniques``.

    The TFLite and ONNX references always (the seeds' table has their rows); the OpenVINO one
    when a technique writes OpenVINO IR.
    """
    from kfedge.techniques import get_technique, list_techniques

    known = list_techniques()
    names = list(dict.fromkeys(cfg.techniques))
    for name in names:
        if name not in known:
            raise ValueError(f"unknown technique {name!r}; expected some of {known}")
    formats = {"tflite", "onnx"} | {get_technique(n).output_format for n in names}
    return [r for f, r in REFERENCE.items() if f in formats and r not in names] + names


def prepare(
    work: Path, cfg: SeedsConfig, dataset: Path | None = None, baseline: Path | None = None
) -> dict[str, Any]:
    """The sample dataset and the trained baseline (or the given ones).

    Returns:
        ``{"dataset", "baseline", "training": {...} or None}``.
    """
    from kfedge.data import SAMPLE_URI, prepare_dataset

    if dataset is None:
        dataset = work / "dataset"
        prepare_dataset(SAMPLE_URI, dataset, [32, 32, 1], 10)
    training = None
    if baseline is None:
        from kfedge.sample import train_sample_baseline

        baseline = work / "baseline.keras"
        log(f"training the sample baseline (up to {cfg.baseline_epochs} epochs)")
        with Stopwatch() as sw:
            training = train_sample_baseline(dataset, baseline, epochs=cfg.baseline_epochs)
        training = {k: v for k, v in dict(training).items() if not isinstance(v, (list, dict))}
        training["wall_seconds"] = round(sw.seconds, 1)
    return {"dataset": Path(dataset), "baseline": Path(baseline), "training": training}


def apply_all(
    names: list[str], baseline: Path, dataset: Path, out: Path, epochs: int | None
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Apply each technique to the baseline; record its wall time and candidate directory.

    Returns:
        ``(made, failed)``: ``{name: {"dir", "format", "technique", "kind", "seconds",
        "params"}}`` and the failures (name, error).
    """
    from kfedge import techniques

    done: dict[str, dict[str, Any]] = {}
    failed: list[dict[str, Any]] = []
    for name in names:
        params: dict[str, Any] = {}
        if epochs is not None and techniques.get_technique(name).fine_tunes:
            params["epochs"] = int(epochs)
        log(f"applying {name}")
        try:
            with Stopwatch() as sw:
                cand = techniques.apply(name, baseline, dataset, params, out / name)
        except Exception as exc:  # noqa: BLE001 - one failed technique must not end the run
            traceback.print_exc()
            failed.append({"name": name, "kind": "kfedge", "error": f"{type(exc).__name__}: {exc}"})
            continue
        done[name] = {
            "dir": out / name,
            "format": cand.format,
            "technique": cand.technique,
            "kind": "kfedge",
            "seconds": round(sw.seconds, 2),
            "params": params,
        }
    return done, failed


def add_outside(
    cands: dict[str, dict[str, Any]],
    failed: list[dict[str, Any]],
    dataset: Path,
    work: Path,
    cfg: SeedsConfig,
    peers: Any | None,
) -> dict[str, Any] | None:
    """Add the hand-written reference and the peers' files made from kfedge's FP32 ONNX.

    Returns:
        What the peers hook reported (None without peers).
    """
    from benchmarks.realsize import reference_candidate
    from kfedge.candidate import model_path

    if "fp32-onnx" not in cands:
        return None
    fp32 = model_path(cands["fp32-onnx"]["dir"])
    extra: list[dict[str, Any]] = []
    if cfg.reference:
        extra.append(
            reference_candidate(fp32, dataset, work / "references", cfg.calibration_samples)
        )
    info = None
    if peers is not None:
        entries, info = peers("sample mobilenet_tiny", fp32, dataset, work / "peers")
        extra += entries
    for e in extra:
        if e.get("status") == "failed":
            failed.append({k: e[k] for k in ("name", "kind", "error")})
            continue
        cands[e["name"]] = {
            "dir": Path(e["path"]),
            "format": e["format"],
            "technique": e["name"],
            "kind": e["kind"],
            "seconds": e["seconds"],
            "params": {},
            "details": {
                k: e.get(k) for k in ("settings", "tried", "failed", "passes", "command") if k in e
            },
        }
    return info


def _as_dict(ev: Any) -> dict[str, Any]:
    """An evaluation as a plain dict (a typed evaluation's JSON form, or the dict itself)."""
    return ev.to_dict() if hasattr(ev, "to_dict") else dict(ev)


def measure(
    cands: dict[str, dict[str, Any]],
    dataset: Path,
    cfg: SeedsConfig,
    eval_kwargs: dict[str, Any] | None = None,
    failed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate every candidate in ``cfg.rounds`` interleaved rounds at each thread count.

    A file that ``evaluate`` cannot score is dropped from every round and recorded in
    ``failed`` (the run goes on with the others).

    Returns:
        ``{name: {"accuracy", "num_samples", "size_bytes", "size_gzip_bytes", "sparsity",
        "peak_rss_mb", "format", "latency": {"<threads>": [per-round {p50, p90, p99, runs}]}}}``.
    """
    from kfedge.evaluate import evaluate

    names = list(cands)
    res: dict[str, Any] = {n: {"latency": {str(t): [] for t in cfg.threads}} for n in names}
    dropped: set[str] = set()
    for r, t, name in interleaved_rounds(names, cfg.rounds, cfg.threads, dropped):
        log(f"round {r + 1}/{cfg.rounds}, {t} thread(s): evaluating {name}")
        try:
            ev = _as_dict(
                evaluate(
                    cands[name]["dir"],
                    dataset,
                    name=name,
                    threads=t,
                    isolate=True,
                    latency_runs=cfg.latency_runs,
                    warmup=cfg.warmup,
                    time_budget_s=cfg.time_budget_s,
                    **(eval_kwargs or {}),
                )
            )
        except Exception as exc:  # noqa: BLE001 - one file must not end the run
            traceback.print_exc()
            dropped.add(name)
            if failed is not None:
                failed.append(
                    {
                        "name": name,
                        "kind": cands[name]["kind"],
                        "error": f"evaluate failed: {type(exc).__name__}: {exc}"[:300],
                    }
                )
            continue
        lat = ev["latency_ms"]
        res[name]["latency"][str(t)].append(
            {"p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "runs": lat["runs"]}
        )
        res[name].update(
            accuracy=ev["accuracy"],
            num_samples=ev["num_samples"],
            size_bytes=ev["size_bytes"],
            size_gzip_bytes=ev.get("size_gzip_bytes"),
            sparsity=ev.get("sparsity"),
            peak_rss_mb=ev.get("peak_rss_mb"),
            format=ev["format"],
        )
    return {n: v for n, v in res.items() if n not in dropped}


def summarize(
    cands: dict[str, dict[str, Any]], meas: dict[str, Any], threads: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Per-candidate rows: medians over rounds, CIs, same-round ratios vs the FP32 reference."""
    from kfedge.stats import median_ci, ratio_estimate, wilson_interval

    rows = []
    for name, m in meas.items():
        ref_name = REFERENCE.get(m["format"])
        ref = meas.get(ref_name) if ref_name and ref_name != name else None
        n = int(m["num_samples"])
        row: dict[str, Any] = {
            "name": name,
            "kind": cands[name]["kind"],
            "technique": cands[name]["technique"],
            "format": m["format"],
            "reference": ref_name if ref else None,
            "accuracy": m["accuracy"],
            "accuracy_ci": list(wilson_interval(round(m["accuracy"] * n), n)),
            "num_samples": n,
            "accuracy_delta_points": None
            if ref is None
            else 100.0 * (m["accuracy"] - ref["accuracy"]),
            "size_bytes": m["size_bytes"],
            "size_gzip_bytes": m["size_gzip_bytes"],
            "size_ratio": None if ref is None else m["size_bytes"] / ref["size_bytes"],
            "gzip_ratio": None
            if ref is None or not m["size_gzip_bytes"]
            else m["size_gzip_bytes"] / ref["size_gzip_bytes"],
            "sparsity": m["sparsity"],
            "peak_rss_mb": m["peak_rss_mb"],
            "technique_seconds": cands[name]["seconds"],
            "details": cands[name].get("details"),
            "latency": {},
        }
        for t in map(str, threads):
            per = m["latency"][t]
            p50s = [p["p50"] for p in per]
            lo, hi = median_ci(p50s)
            row["latency"][t] = {
                "p50": median(p50s),
                "p50_ci": [lo, hi],
                "p90": median([p["p90"] for p in per]),
                "p99": median([p["p99"] for p in per]),
                "p50_rounds": p50s,
                "spread": spread(p50s),
                "ratio": None
                if ref is None
                else ratio_estimate(p50s, [q["p50"] for q in ref["latency"][t]]).to_dict(),
            }
        rows.append(row)
    return rows


def run(
    work: Path,
    cfg: SeedsConfig,
    dataset: Path | None = None,
    baseline: Path | None = None,
    peers: Any | None = None,
) -> dict[str, Any]:
    """The whole section: prepare, apply, add the outside files, measure, summarize.

    Args:
        work: Scratch directory.
        cfg: Parameters.
        dataset: An existing sample split dataset (default: prepared here).
        baseline: An existing trained baseline (default: trained here, and timed).
        peers: The peers hook (see :func:`benchmarks.realsize.run_model`), or None.

    Returns:
        ``{"config", "training", "candidates": [rows], "failed", "peers", "seeds": [rows]}``.
    """
    work.mkdir(parents=True, exist_ok=True)
    names = technique_list(cfg)
    prep = prepare(work, cfg, dataset, baseline)
    cands, failed = apply_all(
        names, prep["baseline"], prep["dataset"], work / "candidates", cfg.epochs
    )
    peer_info = add_outside(cands, failed, prep["dataset"], work, cfg, peers)
    meas = measure(cands, prep["dataset"], cfg, failed=failed)
    rows = summarize(cands, meas, cfg.threads)
    return {
        "config": {
            "techniques": names,
            "threads": list(cfg.threads),
            "rounds": cfg.rounds,
            "latency_runs": cfg.latency_runs,
            "warmup": cfg.warmup,
            "epochs": cfg.epochs,
            "reference": cfg.reference,
        },
        "training": prep["training"],
        "candidates": rows,
        "failed": failed,
        "peers": peer_info,
        "seeds": seeds_rows(rows, cfg.threads),
    }


def seeds_rows(rows: list[dict[str, Any]], threads: tuple[int, ...]) -> list[dict[str, Any]]:
    """The seeds' table: one row per format and thread count.

    TFLite: PTQ = ptq-int8, QAT = qat-int8; ONNX: PTQ = onnx-int8-static; OpenVINO: PTQ =
    openvino-int8 (no QAT for either). Size optimized = the PTQ INT8 file.
    """
    by = {r["name"]: r for r in rows}
    out = []
    for fmt_name, orig, ptq, qat in (
        ("TFLite", "fp32-tflite", "ptq-int8", "qat-int8"),
        ("ONNX Runtime", "fp32-onnx", "onnx-int8-static", None),
        ("OpenVINO", "fp32-openvino", "openvino-int8", None),
    ):
        if orig not in by:
            continue
        for t in map(str, threads):
            o, p, q = by[orig], by.get(ptq), by.get(qat) if qat else None
            out.append(
                {
                    "format": fmt_name,
                    "threads": int(t),
                    "accuracy_original": o["accuracy"],
                    "accuracy_ptq": p["accuracy"] if p else None,
                    "accuracy_qat": q["accuracy"] if q else None,
                    "latency_original": o["latency"][t]["p50"],
                    "latency_ptq": p["latency"][t]["p50"] if p else None,
                    "latency_qat": q["latency"][t]["p50"] if q else None,
                    "size_original_mb": mb(o["size_bytes"]),
                    "size_optimized_mb": mb(p["size_bytes"]) if p else None,
                }
            )
    return out
