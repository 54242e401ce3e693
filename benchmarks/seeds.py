"""Section 1: the seeds' table (ARCHITECTURE.md §7) for the built-in sample, on this machine.

Trains the sample baseline, applies the default plan's techniques (plus the ONNX ones) to it,
and evaluates every candidate with :func:`kfedge.evaluate.evaluate` (latency timed in a fresh
subprocess per candidate). Latency is measured in several rounds, the candidates in a different
order each round, at each thread count; each candidate's latency ratio is taken against the FP32
reference of the same format *within the same round*, and the median over rounds is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Stopwatch,
    fmt,
    interleaved,
    log,
    mb,
    md_table,
    median,
    ratio_str,
    spread,
)

#: What ``make bench`` optimizes: the default CPU plan plus the ONNX techniques.
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
)
#: The FP32 reference every candidate of a format is compared with.
REFERENCE = {"tflite": "fp32-tflite", "onnx": "fp32-onnx"}
#: Techniques that fine-tune (take ``epochs``).
FINE_TUNING = {"qat-int8", "prune", "cluster", "prune-cluster-int8", "pqat-int8", "cqat-int8"}


@dataclass
class SeedsConfig:
    """Parameters of the seeds benchmark.

    Attributes:
        techniques: Techniques to apply to the baseline (the FP32 references are added).
        threads: Thread counts to time every candidate at.
        rounds: Latency rounds (interleaved order); the median over rounds is reported.
        latency_runs: Timed batch-1 runs per candidate per round.
        warmup: Untimed runs before each timed block.
        time_budget_s: Time budget of one timed block.
        epochs: Fine-tune epochs of the training techniques (None = technique defaults, as
            ``kfedge run`` uses).
        baseline_epochs: Maximum epochs of the baseline training.
    """

    techniques: tuple[str, ...] = DEFAULT_TECHNIQUES
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 3
    latency_runs: int = 300
    warmup: int = 30
    time_budget_s: float = 5.0
    epochs: int | None = None
    baseline_epochs: int = 30
    extra: dict[str, Any] = field(default_factory=dict)


def _technique_list(cfg: SeedsConfig) -> list[str]:
    names = list(dict.fromkeys(cfg.techniques))
    from kfedge.provision import TECHNIQUE_OUTPUT

    for name in names:
        if name not in TECHNIQUE_OUTPUT:
            raise ValueError(
                f"unknown technique {name!r}; expected some of {sorted(TECHNIQUE_OUTPUT)}"
            )
    refs = [
        ref
        for fmt_name, ref in REFERENCE.items()
        if ref not in names and any(TECHNIQUE_OUTPUT[n][0] == fmt_name for n in names)
    ]
    return refs + names


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
        training["wall_seconds"] = round(sw.seconds, 1)
    return {"dataset": Path(dataset), "baseline": Path(baseline), "training": training}


def apply_all(
    names: list[str], baseline: Path, dataset: Path, out: Path, epochs: int | None
) -> dict[str, dict[str, Any]]:
    """Apply each technique to the baseline; record its wall time and candidate directory."""
    from kfedge import techniques

    done: dict[str, dict[str, Any]] = {}
    for name in names:
        params: dict[str, Any] = {}
        if epochs is not None and name in FINE_TUNING:
            params["epochs"] = int(epochs)
        log(f"applying {name}")
        with Stopwatch() as sw:
            cand = techniques.apply(name, baseline, dataset, params, out / name)
        done[name] = {
            "dir": out / name,
            "format": cand.format,
            "technique": cand.technique,
            "seconds": round(sw.seconds, 2),
            "params": params,
        }
    return done


def measure(
    cands: dict[str, dict[str, Any]],
    dataset: Path,
    cfg: SeedsConfig,
    eval_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate every candidate in ``cfg.rounds`` interleaved rounds at each thread count.

    Returns:
        ``{name: {"accuracy", "size_bytes", "size_gzip_bytes", "peak_rss_mb", "latency":
        {threads: [per-round {p50, p90, p99}]}}}``.
    """
    from kfedge.evaluate import evaluate

    names = list(cands)
    res: dict[str, Any] = {n: {"latency": {t: [] for t in cfg.threads}} for n in names}
    for r in range(cfg.rounds):
        for t in cfg.threads:
            for name in interleaved(names, r):
                log(f"round {r + 1}/{cfg.rounds}, {t} thread(s): evaluating {name}")
                ev = evaluate(
                    cands[name]["dir"],
                    dataset,
                    threads=t,
                    isolate=True,
                    latency_runs=cfg.latency_runs,
                    warmup=cfg.warmup,
                    time_budget_s=cfg.time_budget_s,
                    **(eval_kwargs or {}),
                )
                lat = ev["latency_ms"]
                res[name]["latency"][t].append(
                    {"p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "runs": lat["runs"]}
                )
                res[name].update(
                    accuracy=ev["accuracy"],
                    num_samples=ev["num_samples"],
                    size_bytes=ev["size_bytes"],
                    size_gzip_bytes=ev["size_gzip_bytes"],
                    sparsity=ev["sparsity"],
                    peak_rss_mb=ev["peak_rss_mb"],
                    format=ev["format"],
                    technique=ev["technique"],
                )
    return res


def summarize(
    cands: dict[str, dict[str, Any]], meas: dict[str, Any], threads: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Per-candidate rows: medians over rounds and same-round ratios vs the FP32 reference."""
    rows = []
    for name, m in meas.items():
        ref_name = REFERENCE.get(m["format"])
        ref = meas.get(ref_name) if ref_name else None
        row: dict[str, Any] = {
            "name": name,
            "technique": m["technique"],
            "format": m["format"],
            "reference": ref_name if ref else None,
            "accuracy": m["accuracy"],
            "num_samples": m["num_samples"],
            "accuracy_delta_points": None
            if ref is None
            else 100.0 * (m["accuracy"] - ref["accuracy"]),
            "size_bytes": m["size_bytes"],
            "size_gzip_bytes": m["size_gzip_bytes"],
            "size_ratio": None if ref is None else m["size_bytes"] / ref["size_bytes"],
            "gzip_ratio": None if ref is None else m["size_gzip_bytes"] / ref["size_gzip_bytes"],
            "sparsity": m["sparsity"],
            "peak_rss_mb": m["peak_rss_mb"],
            "technique_seconds": cands[name]["seconds"],
            "latency": {},
        }
        for t in threads:
            per = m["latency"][t]
            p50s = [p["p50"] for p in per]
            ratios = None
            if ref is not None:
                ratios = [p["p50"] / q["p50"] for p, q in zip(per, ref["latency"][t])]
            row["latency"][t] = {
                "p50": median(p50s),
                "p90": median([p["p90"] for p in per]),
                "p99": median([p["p99"] for p in per]),
                "p50_rounds": p50s,
                "spread": spread(p50s),
                "ratio": None if ratios is None else median(ratios),
                "ratio_rounds": ratios,
            }
        rows.append(row)
    return rows


def run(
    work: Path, cfg: SeedsConfig, dataset: Path | None = None, baseline: Path | None = None
) -> dict[str, Any]:
    """The whole section: prepare, apply, measure, summarize.

    Args:
        work: Scratch directory.
        cfg: Parameters.
        dataset: An existing sample split dataset (default: prepared here).
        baseline: An existing trained baseline (default: trained here, and timed).

    Returns:
        ``{"config", "training", "candidates": [rows], "seeds": [seeds-table rows]}``.
    """
    work.mkdir(parents=True, exist_ok=True)
    names = _technique_list(cfg)
    prep = prepare(work, cfg, dataset, baseline)
    cands = apply_all(names, prep["baseline"], prep["dataset"], work / "candidates", cfg.epochs)
    meas = measure(cands, prep["dataset"], cfg)
    rows = summarize(cands, meas, cfg.threads)
    return {
        "config": {
            "techniques": names,
            "threads": list(cfg.threads),
            "rounds": cfg.rounds,
            "latency_runs": cfg.latency_runs,
            "warmup": cfg.warmup,
            "epochs": cfg.epochs,
        },
        "training": prep["training"],
        "candidates": rows,
        "seeds": seeds_rows(rows, cfg.threads),
    }


# -- the tables ------------------------------------------------------------------------------
SEEDS_HEADER = [
    "Model",
    "Accuracy original",
    "Accuracy PTQ (int8)",
    "Accuracy QAT",
    "Latency original (ms)",
    "Latency PTQ",
    "Latency QAT",
    "Size original (MB)",
    "Size optimized (MB)",
]
CANDIDATE_HEADER_FIXED = [
    "Candidate",
    "Format",
    "Accuracy",
    "Δ acc (points)",
]


def seeds_rows(rows: list[dict[str, Any]], threads: tuple[int, ...]) -> list[dict[str, Any]]:
    """The seeds' table: one row per format and thread count.

    TFLite: PTQ = ptq-int8, QAT = qat-int8; ONNX: PTQ = onnx-int8-static, no QAT. Size
    optimized = the PTQ INT8 file.
    """
    by = {r["name"]: r for r in rows}
    out = []
    for fmt_name, orig, ptq, qat in (
        ("TFLite", "fp32-tflite", "ptq-int8", "qat-int8"),
        ("ONNX Runtime", "fp32-onnx", "onnx-int8-static", None),
    ):
        if orig not in by:
            continue
        for t in threads:
            o, p, q = by[orig], by.get(ptq), by.get(qat) if qat else None
            out.append(
                {
                    "model": f"mobilenet_tiny 32x32 digits, {fmt_name}, {t} thread"
                    + ("s" if t > 1 else ""),
                    "threads": t,
                    "format": fmt_name,
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


def seeds_markdown(seeds: list[dict[str, Any]]) -> str:
    """The seeds' table as Markdown (latency: median over rounds of the batch-1 p50)."""
    rows = [
        [
            s["model"],
            fmt(s["accuracy_original"], ".4f"),
            fmt(s["accuracy_ptq"], ".4f"),
            fmt(s["accuracy_qat"], ".4f", "N/A"),
            fmt(s["latency_original"], ".3f"),
            fmt(s["latency_ptq"], ".3f"),
            fmt(s["latency_qat"], ".3f", "N/A"),
            fmt(s["size_original_mb"], ".4f"),
            fmt(s["size_optimized_mb"], ".4f"),
        ]
        for s in seeds
    ]
    return md_table(SEEDS_HEADER, rows)


def candidates_markdown(rows: list[dict[str, Any]], threads: tuple[int, ...]) -> str:
    """Every candidate as Markdown.

    Columns: accuracy delta, latency per thread count (median p50, p90, p99, spread, ratio vs
    the same-format FP32), sizes and ratios, technique time.
    """
    t0 = threads[0]
    header = [*CANDIDATE_HEADER_FIXED, f"p50 / p90 / p99 ms @{t0}t", f"spread @{t0}t"]
    header += [f"ratio vs FP32 @{t}t" for t in threads]
    header += [f"p50 ms @{t}t" for t in threads[1:]]
    header += [
        "Size (MB)",
        "Size ratio",
        "gzip (MB)",
        "gzip ratio",
        "Sparsity",
        "Technique time (s)",
    ]
    body = []
    for r in rows:
        lat = r["latency"]
        cells = [
            r["name"],
            r["format"],
            fmt(r["accuracy"], ".4f"),
            fmt(r["accuracy_delta_points"], "+.2f"),
            f"{lat[t0]['p50']:.3f} / {lat[t0]['p90']:.3f} / {lat[t0]['p99']:.3f}",
            f"{100 * lat[t0]['spread']:.0f} %",
        ]
        cells += [ratio_str(lat[t]["ratio"]) for t in threads]
        cells += [fmt(lat[t]["p50"], ".3f") for t in threads[1:]]
        cells += [
            fmt(mb(r["size_bytes"]), ".4f"),
            ratio_str(r["size_ratio"]),
            fmt(mb(r["size_gzip_bytes"]), ".4f"),
            ratio_str(r["gzip_ratio"]),
            fmt(r["sparsity"], ".2f"),
            fmt(r["technique_seconds"], ".1f"),
        ]
        body.append(cells)
    return md_table(header, body)
