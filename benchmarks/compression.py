"""Section: how much smaller kfedge makes a real-size model (file and gzip), technique by technique.

The model is MobileNetV2-224 with random weights (``keras.applications``, ``weights=None``);
pruning and clustering fine-tune it on random data for a handful of steps (``epochs``
below): enough for the sparsity and cluster counts the techniques enforce, which is what the
file sizes depend on — not for accuracy, which is not reported here. Every ratio is against
kfedge's FP32 TFLite export of the same model.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import models as bmodels
from benchmarks.common import Stopwatch, file_sizes, log

#: (name, technique, parameters) of every compressed file; fine-tune settings are added.
PLAN: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("fp32-tflite", "fp32-tflite", {}),
    ("ptq-int8", "ptq-int8", {}),
    ("prune-50", "prune", {"target_sparsity": 0.5}),
    ("prune-80", "prune", {"target_sparsity": 0.8}),
    ("cluster-16", "cluster", {"number_of_clusters": 16}),
    ("cluster-32", "cluster", {"number_of_clusters": 32}),
    ("prune-80-1x4", "prune", {"target_sparsity": 0.8, "block_size": [1, 4]}),
    (
        "prune80-cluster16-int8",
        "prune-cluster-int8",
        {"target_sparsity": 0.8, "number_of_clusters": 16},
    ),
    (
        "prune80-1x4-cluster16-int8",
        "prune-cluster-int8",
        {"target_sparsity": 0.8, "number_of_clusters": 16, "block_size": [1, 4]},
    ),
)
#: Techniques that fine-tune.
FINE_TUNING = {"prune", "cluster", "prune-cluster-int8"}
#: The goal the generated text checks: the chain's gzip size against the FP32 gzip size. The
#: chain prunes in 1x4 blocks; :data:`SCATTERED` is the same chain pruned weight by weight.
CHAIN = "prune80-1x4-cluster16-int8"
SCATTERED = "prune80-cluster16-int8"
GOAL_GZIP_RATIO = 0.08


@dataclass
class CompressionConfig:
    """Parameters of the compression section.

    Attributes:
        model: Model key (:data:`benchmarks.models.MODELS`).
        epochs: Fine-tune epochs of pruning and clustering (every stage of the chain).
        batch_size: Fine-tune batch size.
        per_split: Random samples per split (the train split has twice as many).
        calibration_samples: Calibration samples of the INT8 files.
        plan: Names from :data:`PLAN` to make (default: all).
    """

    model: str = "mobilenetv2-224"
    epochs: int = 1
    batch_size: int = 16
    per_split: int = 32
    calibration_samples: int = 32
    plan: tuple[str, ...] = tuple(p[0] for p in PLAN)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return {**self.__dict__, "plan": list(self.plan)}


def run(work: Path, cfg: CompressionConfig, model_dir: Path | None = None) -> dict[str, Any]:
    """Make every file of the plan and measure its size.

    Args:
        work: Scratch directory.
        cfg: Parameters.
        model_dir: Where :func:`benchmarks.models.prepare` already built the model (reused).

    Returns:
        ``{"config", "model", "label", "params", "train_samples", "steps_per_epoch", "rows",
        "failed", "goal": {...}}``.
    """
    from kfedge import techniques
    from kfedge.candidate import load_candidate, model_path
    from kfedge.data import read_info

    s = bmodels.spec(cfg.model)
    prep = bmodels.prepare(s, model_dir or work / "model", cfg.per_split)
    info = read_info(prep["dataset"])
    train = int(info.counts["train"])
    plan = [p for p in PLAN if p[0] in cfg.plan]
    unknown = sorted(set(cfg.plan) - {p[0] for p in PLAN})
    if unknown:
        raise ValueError(f"unknown compression plan entries {unknown}; expected some of {PLAN}")
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for name, tech, params in plan:
        p = dict(params, name=name)
        if tech in FINE_TUNING:
            p.update(epochs=cfg.epochs, batch_size=cfg.batch_size)
        if tech in ("ptq-int8", "prune-cluster-int8"):
            p["calibration_samples"] = cfg.calibration_samples
        dest = work / "candidates" / name
        try:
            log(f"compression: {name}")
            with Stopwatch() as sw:
                techniques.apply(tech, prep["keras"], prep["dataset"], p, dest)
            cand = load_candidate(dest)
        except Exception as exc:  # noqa: BLE001 - one failure must not end the run
            traceback.print_exc()
            failed.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        st = cand.stats
        rows.append(
            {
                "name": name,
                "technique": cand.technique,
                "format": cand.format,
                "params": {k: v for k, v in p.items() if k != "name"},
                "seconds": round(sw.seconds, 2),
                **file_sizes(model_path(dest)),
                "sparsity": st.get("sparsity"),
                "kernel_sparsity": st.get("kernel_sparsity"),
                "max_unique_weights": st.get("max_unique_weights"),
                "clusters": params.get("number_of_clusters"),
            }
        )
    ref = next((r for r in rows if r["name"] == "fp32-tflite"), None)
    for r in rows:
        r["size_ratio"] = r["size_bytes"] / ref["size_bytes"] if ref else None
        r["gzip_ratio"] = r["size_gzip_bytes"] / ref["size_gzip_bytes"] if ref else None
    chain = next((r for r in rows if r["name"] == CHAIN), None)
    return {
        "config": cfg.to_dict(),
        "model": s.key,
        "label": s.label,
        "params": prep["params"],
        "train_samples": train,
        "steps_per_epoch": -(-train // cfg.batch_size),
        "rows": rows,
        "failed": failed,
        "goal": {
            "name": CHAIN,
            "gzip_ratio_max": GOAL_GZIP_RATIO,
            "model": "mobilenetv2-224",
            "gzip_ratio": chain["gzip_ratio"] if chain else None,
            "scattered": SCATTERED,
        },
    }
