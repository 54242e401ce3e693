"""A bounded tuning search: a handful of variants of one INT8 technique, the best one kept.

What is fastest on a CPU depends on its instruction set and its runtime's kernels, so the
settings are measured, not assumed. A tuning technique (``tune-onnx-int8``,
``tune-openvino-int8``) exports the FP32 ONNX model once, then, within a time budget:

1. applies the next variant of its inner technique (``onnx-int8-static`` / ``openvino-int8``
   with other settings) to that export;
2. scores top-1 on the calibration split against the FP32 model of the same runtime (the data
   the variant was calibrated on: optimistic, which is why the bound is tight);
3. when it is accurate, times it side by side with that FP32 model in a quick check
   (:func:`kfedge.sidebyside.time_side_by_side`: fresh worker processes, interleaved rounds);
4. stops early once an accurate variant is clearly fast (the upper end of its latency ratio's
   interval at most ``stop_ratio``); a variant that loses accuracy queues the accuracy
   rescues (first / last layer in float, another calibration...) on top of its settings.

The candidate is the accurate variant with the lowest ratio (the most accurate one when none
is), and ``candidate.json`` records every variant tried. The quick check runs where the
technique runs: in ``kfedge run`` that is the target machine, in a cluster an ordinary node
(``stats.quick_check`` says whether its ISA is the target's). Either way the decision that
counts is the benchmark step's, which times the candidate with all the others on the target.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from kfedge.cpu import detect_isa, known_isa, parse_isa
from kfedge.errors import KfedgeError, ModelFormatError
from kfedge.fsutil import remove_path
from kfedge.techniques._base import Source, TechniqueConfig, check_data, load_xy
from kfedge.techniques._declare import Technique
from kfedge.techniques._onnx import check_onnx_source


class TuneConfig(TechniqueConfig):
    """Parameters of the tuning searches."""

    isa: str | None = Field(
        default=None,
        description="Instruction set of the CPU the model will run on (x86-64-avx2, arm64...); "
        "provision sets the target's. None: any x86-64.",
    )
    opset: int = Field(default=17, ge=13, le=21, description="Opset of the ONNX export.")
    calibration_samples: int = Field(
        default=256, ge=1, le=100_000, description="Calibration samples of every variant."
    )
    budget_s: float = Field(
        default=150, ge=5, le=3600, description="Time budget of the search in seconds."
    )
    max_variants: int = Field(default=6, ge=1, le=12, description="Most variants to try.")
    max_accuracy_drop: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Largest top-1 drop on the calibration split against the FP32 model of "
        "the same runtime for a variant to count as accurate (a fraction: 0.005 = half a "
        "point); never below one calibration sample (1 / samples).",
    )
    stop_ratio: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="Stop early when an accurate variant's latency ratio to FP32 is at most "
        "this, interval included.",
    )
    rounds: int = Field(default=3, ge=2, le=20, description="Rounds of each quick check.")
    round_budget_s: float = Field(
        default=0.3, gt=0, le=10, description="Seconds per model per quick-check round."
    )
    threads: int | None = Field(
        default=None, ge=1, description="Quick-check threads (None: the CPUs this may use)."
    )

    _known_isa = field_validator("isa")(known_isa)


class TuneTechnique(Technique):
    """A search over variants of :attr:`inner`; subclasses declare the variants.

    A subclass declares ``output_format``: the inner technique's.

    Attributes:
        inner: The technique whose settings are searched.
        reference: The FP32 technique of the same runtime, applied to the ONNX export (None:
            the export itself is the reference).
    """

    inner: ClassVar[str]
    reference: ClassVar[str | None] = None
    quant_mode = "int8"
    needs_data = True
    group = "PTQ"
    Config = TuneConfig

    def _inner(self) -> Technique:
        from kfedge.techniques._declare import REGISTRY

        return REGISTRY[self.inner]

    @property
    def model_file(self) -> str:
        """The inner technique's model file."""
        return self._inner().model_file

    def output_stats(self, path: Path) -> dict[str, Any]:
        """The inner technique's stats of the written model."""
        return self._inner().output_stats(path)

    def variants(self, cfg: Any) -> list[dict[str, Any]]:
        """The settings to try, most promising first."""
        return [{}]

    def rescues(self, cfg: Any) -> list[dict[str, Any]]:
        """Settings added on top of a variant that lost accuracy, in the order to try."""
        return []

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Refuse what cannot be exported to ONNX, and a missing calibration split."""
        check_onnx_source(src, self.name)
        check_data(data, ("calibration",), f"{self.name} (calibration and accuracy check)")

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Search, then copy the chosen variant's files into ``work``."""
        from kfedge.techniques._declare import REGISTRY

        started = time.perf_counter()
        scratch = work / ".search"
        scratch.mkdir()
        try:
            onnx = REGISTRY["fp32-onnx"].apply(src.path, None, {"opset": cfg.opset}, scratch / "x")
            base = scratch / "x" / onnx.model_file
            ref = base
            if self.reference:
                r = REGISTRY[self.reference].apply(base, None, {}, scratch / "ref")
                ref = scratch / "ref" / r.model_file
            search = _Search(self, cfg, Path(data), ref, started)  # type: ignore[arg-type]
            chosen = search.run(base, scratch)
            for f in chosen.iterdir():
                if f.is_file() and f.name != "candidate.json" and not f.name.startswith("."):
                    f.replace(work / f.name)
            return search.stats()
        finally:
            remove_path(scratch)


class _Search:
    """One search's state: the reference, the variants tried, the clock."""

    def __init__(
        self, tech: TuneTechnique, cfg: Any, data: Path, ref: Path, started: float
    ) -> None:
        self.tech, self.cfg, self.data, self.ref, self.started = tech, cfg, data, ref, started
        x, y = load_xy(data, "calibration", cfg.calibration_samples)
        self.x, self.y = np.asarray(x, dtype=np.float32), np.asarray(y)
        self.ref_accuracy = self.accuracy(ref)
        #: the accuracy bound: max_accuracy_drop, but never below one calibration sample
        self.bound = max(cfg.max_accuracy_drop, 1 / max(1, len(self.x)))
        self.tried: list[dict[str, Any]] = []
        self.dirs: list[Path] = []
        self.stopped = "every variant tried"
        self.threads: int | None = None
        self.chosen = 0

    def accuracy(self, model: Path) -> float:
        """Top-1 of ``model`` on the calibration samples."""
        from kfedge.runners import load_runner

        runner = load_runner(model, threads=self.cfg.threads)
        hits = 0
        for i in range(0, len(self.x), 32):
            bx, by = self.x[i : i + 32], self.y[i : i + 32]
            out = np.asarray(runner.predict(bx)).reshape(len(bx), -1)
            hits += int(np.sum(out.argmax(axis=1) == by))
        return hits / max(1, len(self.x))

    def quick_ratio(self, model: Path) -> dict[str, Any]:
        """Latency ratio ``model`` / FP32 reference from a short side-by-side session."""
        from kfedge.sidebyside import time_side_by_side

        s = time_side_by_side(
            {"variant": model, "fp32": self.ref},
            self.x[:1],
            rounds=self.cfg.rounds,
            runs_per_round=50,
            round_budget_s=self.cfg.round_budget_s,
            warmup=3,
            pause_s=0.05,
            threads=self.cfg.threads,
        )
        est = s.ratio("variant", "fp32")
        self.threads = s.threads
        return {
            "ratio": round(est.ratio, 4),
            "ratio_ci": [round(est.low, 4), round(est.high, 4)],
            "p50_ms": s.models["variant"].p50_ms,
            "fp32_p50_ms": s.models["fp32"].p50_ms,
        }

    def run(self, base: Path, scratch: Path) -> Path:
        """Try variants until the queue, ``max_variants`` or the budget runs out; the best dir."""
        cfg = self.cfg
        queue = [dict(v) for v in self.tech.variants(cfg)]
        rescued = False
        fixed = {"calibration_samples": cfg.calibration_samples}
        if "isa" in self.tech._inner().Config.model_fields:
            fixed["isa"] = cfg.isa
        while queue and len(self.tried) < cfg.max_variants:
            spent = time.perf_counter() - self.started
            per = spent / max(1, len(self.tried))
            if self.tried and spent + per > cfg.budget_s:
                self.stopped = f"time budget ({cfg.budget_s:g} s)"
                break
            params = queue.pop(0)
            t0 = time.perf_counter()
            out = scratch / f"v{len(self.tried)}"
            entry: dict[str, Any] = {"params": params}
            try:
                cand = self.tech._inner().apply(base, self.data, {**fixed, **params}, out)
            except KfedgeError as exc:
                entry.update(error=str(exc).splitlines()[0][:300])
                self.tried.append(entry)
                self.dirs.append(out)
                continue
            model = out / cand.model_file
            acc = self.accuracy(model)
            entry.update(accuracy=round(acc, 5), drop=round(self.ref_accuracy - acc, 5))
            entry["accurate"] = self.ref_accuracy - acc <= self.bound + 1e-9
            if entry["accurate"]:
                entry.update(self.quick_ratio(model))
            elif not rescued:
                rescued = True
                queue[:0] = [{**params, **r} for r in self.tech.rescues(cfg)]
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            self.tried.append(entry)
            self.dirs.append(out)
            if entry["accurate"] and entry["ratio_ci"][1] <= cfg.stop_ratio:
                self.stopped = (
                    f"early stop: accurate and clearly fast (ratio <= {cfg.stop_ratio:g} "
                    "with its interval)"
                )
                break
        else:
            if queue:
                self.stopped = f"max_variants ({cfg.max_variants})"
        self.chosen = self.choose()
        return self.dirs[self.chosen]

    def choose(self) -> int:
        """Index of the accurate variant with the lowest ratio, else of the most accurate."""
        made = [i for i, e in enumerate(self.tried) if "accuracy" in e]
        if not made:
            errors = "; ".join(e.get("error", "") for e in self.tried)
            raise ModelFormatError(f"{self.tech.name}: no variant could be made: {errors}")
        accurate = [i for i in made if self.tried[i]["accurate"]]
        if accurate:
            return min(accurate, key=lambda i: self.tried[i]["ratio"])
        return max(made, key=lambda i: (self.tried[i]["accuracy"], -i))

    def stats(self) -> dict[str, Any]:
        """What ``candidate.json`` records about the search."""
        from kfedge.candidate import load_candidate

        chosen = load_candidate(self.dirs[self.chosen])
        host = detect_isa()
        target = parse_isa(self.cfg.isa) if self.cfg.isa else None
        keep = ("int8_settings", "kept_float", "quant_format", "offline_optimization", "preset")
        return {
            **{k: chosen.stats[k] for k in keep if k in chosen.stats},
            "chosen_params": self.tried[self.chosen]["params"],
            "chosen_variant": self.chosen,
            "search": self.tried,
            "stopped": self.stopped,
            "search_seconds": round(time.perf_counter() - self.started, 2),
            "reference": {"model": self.ref.name, "calibration_top1": round(self.ref_accuracy, 5)},
            "accuracy_bound": round(self.bound, 5),
            "quick_check": {
                "host_isa": host.name,
                "target_isa": target.name if target else None,
                "same_isa": None if target is None else target == host,
                "threads": self.threads,
                "note": "timed where the technique ran; the benchmark step times it on the target",
            },
        }
