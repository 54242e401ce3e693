"""Synthetic side-by-side timings with known answers, for the selection and report tests.

Each model's per-round medians are ``true_ms * drift[r] * noise[r]``: a common drift of the
machine (which the paired ratios must cancel) and a small independent noise per model and
round (lognormal, fixed seed). Nothing here times anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kfedge import stats
from kfedge.sidebyside import ModelTiming, SideBySide

#: A slow drift of the machine over 8 rounds, shared by every model (up to 25 %).
DRIFT = (1.00, 1.10, 0.95, 1.25, 1.05, 0.98, 1.15, 1.02)


def rounds_for(true_ms: float, seed: int, noise: float = 0.005) -> list[float]:
    """Per-round medians of a model whose true latency is ``true_ms``."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, noise, len(DRIFT))
    return [float(true_ms * d * np.exp(e)) for d, e in zip(DRIFT, eps, strict=True)]


def make_timings(
    true_ms: dict[str, float],
    *,
    skipped: dict[str, str] | None = None,
    runtime: dict[str, dict[str, Any]] | None = None,
    machine: dict[str, Any] | None = None,
    noise: float = 0.005,
) -> SideBySide:
    """A side-by-side session for models of the given true latencies (ms)."""
    per_round = {
        name: rounds_for(ms, seed=100 + i, noise=noise)
        for i, (name, ms) in enumerate(true_ms.items())
    }
    return session(per_round, skipped=skipped, runtime=runtime, machine=machine)


def session(
    per_round: dict[str, list[float]],
    *,
    skipped: dict[str, str] | None = None,
    runtime: dict[str, dict[str, Any]] | None = None,
    machine: dict[str, Any] | None = None,
) -> SideBySide:
    """A side-by-side session of models with the given per-round medians (ms)."""
    models = {}
    for name, r in per_round.items():
        arr = np.asarray(r)
        models[name] = ModelTiming(
            name=name,
            path=f"/models/{name}/model.tflite",
            format="tflite",
            p50_ms=float(np.median(arr)),
            p50_ci_ms=stats.median_ci(arr),
            p90_ms=float(arr.max() * 1.1),
            p99_ms=float(arr.max() * 1.3),
            mean_ms=float(arr.mean()),
            runs=800,
            rounds_p50_ms=[float(v) for v in r],
            runtime=(runtime or {}).get(name, {"format": "tflite", "threads": 2}),
            peak_rss_mb=50.0,
        )
    return SideBySide(
        models=models,
        skipped=dict(skipped or {}),
        rounds=len(next(iter(per_round.values()))),
        threads=2,
        usable_cpus=2,
        cpus_source="cgroup cpu quota",
        seconds=12.0,
        machine=machine or {"machine": "x86_64", "cpu": "Test CPU @ 2GHz", "isa": ["avx2"]},
    )


def evaluation(
    name: str,
    technique: str,
    acc: float,
    p50: float,
    size: int,
    fmt: str = "tflite",
    **extra: Any,
) -> dict[str, Any]:
    """An evaluation dict; ``p50`` is its own rough latency (not what timings say)."""
    return {
        "name": name,
        "technique": technique,
        "format": fmt,
        "accuracy": acc,
        "latency_ms": {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "runs": 30},
        "size_bytes": size,
        "size_gzip_bytes": int(size * 0.8),
        "threads": 2,
        **extra,
    }
