"""Section: real-size models side by side — kfedge's candidates, hand-written references, peers.

For each model (MobileNetV2-224 and ResNet50 from ``keras.applications``, random weights):

1. kfedge's own techniques convert and quantize it (``fp32-tflite``, ``fp32-onnx``, ``ptq-int8``,
   ``onnx-int8-static``, ...), each timed;
2. :mod:`benchmarks.references` quantizes kfedge's FP32 ONNX with ONNX Runtime's own recipe;
3. peers (:mod:`benchmarks.peers`: Microsoft Olive) optimize the same FP32 ONNX file;
4. every file is timed in the same run, in interleaved rounds with a pause before each block,
   each block in a fresh process that imports the runtime and never TensorFlow
   (:mod:`benchmarks.child`). Per round: the p50 of the block. Reported: the median of the
   per-round p50s with a distribution-free confidence interval, and the paired ratio to
   ONNX Runtime FP32 (:func:`kfedge.stats.ratio_estimate`: geometric mean of the same-round
   ratios with a t-interval).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import models as bmodels
from benchmarks.choice import BASELINE, kfedge_choice
from benchmarks.common import (
    Stopwatch,
    file_sizes,
    interleaved_rounds,
    log,
    median,
    run_json_child,
    spread,
)

#: kfedge techniques applied to every real-size model: every post-training technique of the
#: ``cpu-amd64`` plan, the OpenVINO ones and both tuning searches.
TECHNIQUES = (
    "fp32-tflite",
    "fp32-onnx",
    "fp32-openvino",
    "ptq-dynamic",
    "ptq-fp16",
    "ptq-int8",
    "onnx-int8-static",
    "openvino-int8",
    "tune-onnx-int8",
    "tune-openvino-int8",
)
#: Techniques that take a calibration-sample count.
CALIBRATED = (
    "ptq-int8",
    "onnx-int8-static",
    "openvino-int8",
    "tune-onnx-int8",
    "tune-openvino-int8",
)
#: The FP32 model of each format (a second, same-format ratio).
FORMAT_FP32 = {"tflite": "fp32-tflite", "onnx": "fp32-onnx", "openvino": "fp32-openvino"}
#: The issue's speed goals: kfedge's choice at most this ratio to ORT FP32, per model.
GOALS = {"mobilenetv2-224": 0.60, "resnet50": 0.50}
#: Name of the hand-written ONNX Runtime reference.
ORT_REFERENCE = "ort-static-qdq-reference"


@dataclass
class SideBySideConfig:
    """Parameters of the side-by-side section.

    Attributes:
        models: Keys of :data:`benchmarks.models.MODELS`.
        techniques: kfedge techniques applied to every model.
        threads: Thread counts every file is timed at.
        rounds: Interleaved rounds (the order changes every round).
        runs: Most timed batch-1 runs per block.
        warmup: Untimed runs before each block.
        budget_s: Seconds of timed runs per block (at least 5 runs).
        pause_s: Pause before each block (the previous process's threads go idle).
        per_split: Random samples per split (calibration uses them).
        calibration_samples: Calibration samples of every INT8 method.
        reference: Build the hand-written ONNX Runtime reference.
        reuse: Reuse models and candidates already in the work directory.
    """

    models: tuple[str, ...] = ("mobilenetv2-224", "resnet50")
    techniques: tuple[str, ...] = TECHNIQUES
    threads: tuple[int, ...] = (1, 2)
    rounds: int = 5
    runs: int = 200
    warmup: int = 5
    budget_s: float = 3.0
    pause_s: float = 1.0
    per_split: int = 32
    calibration_samples: int = 32
    reference: bool = True
    reuse: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        d = dict(self.__dict__)
        d["models"], d["techniques"], d["threads"] = (
            list(self.models),
            list(self.techniques),
            list(self.threads),
        )
        return d


def entry(
    name: str, kind: str, fmt: str, path: Path, seconds: float | None, **more: Any
) -> dict[str, Any]:
    """One file to time: ``kind`` is ``kfedge``, ``reference`` or ``peer``."""
    return {
        "name": name,
        "kind": kind,
        "format": fmt,
        "path": str(path),
        "seconds": seconds,
        **file_sizes(path),
        **more,
    }


def failure(name: str, kind: str, exc: BaseException | str) -> dict[str, Any]:
    """A file that could not be made (the table says so, with the reason)."""
    msg = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}".strip()
    return {"name": name, "kind": kind, "status": "failed", "error": msg.splitlines()[0][:300]}


def kfedge_candidates(
    keras_path: Path, data: Path, work: Path, cfg: SideBySideConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply every technique of ``cfg`` to the model.

    The ONNX quantizers start from kfedge's FP32 ONNX export (one tf2onnx export per model).

    Returns:
        ``(made, failed)``: entries to time, and failures.
    """
    from kfedge import techniques
    from kfedge.candidate import META_FILE, load_candidate, model_path

    made: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    names = list(dict.fromkeys(cfg.techniques))
    if any(n.startswith("onnx-") for n in names) and BASELINE not in names:
        names.insert(0, BASELINE)
    for name in names:
        params: dict[str, Any] = {}
        if name in CALIBRATED:
            params["calibration_samples"] = cfg.calibration_samples
        source = work / BASELINE if name.startswith("onnx-") else keras_path
        dest = work / name
        try:
            made_in = dest.parent / f"{name}.seconds"
            if cfg.reuse and (dest / META_FILE).is_file():
                cand = load_candidate(dest)
                seconds = float(made_in.read_text()) if made_in.is_file() else None
            else:
                log(f"{keras_path.stem}: applying {name}")
                with Stopwatch() as sw:
                    cand = techniques.apply(name, source, data, params, dest)
                seconds = round(sw.seconds, 2)
                made_in.write_text(str(seconds))
            made.append(
                entry(
                    name,
                    "kfedge",
                    cand.format,
                    model_path(dest),
                    seconds,
                    technique=name,
                    settings=cand.stats.get("int8_settings"),
                    **_search_facts(cand.stats),
                )
            )
        except Exception as exc:  # noqa: BLE001 - one failed technique must not end the run
            log(f"{keras_path.stem}: {name} failed: {exc}")
            traceback.print_exc()
            failed.append(failure(name, "kfedge", exc))
    return made, failed


def _search_facts(st: dict[str, Any]) -> dict[str, Any]:
    """A tuning search's facts from ``candidate.json`` stats (nothing for other techniques)."""
    if "search" not in st:
        return {}
    tried = st["search"]
    return {
        "search": {
            "seconds": st.get("search_seconds"),
            "tried": len(tried),
            "chosen_params": st.get("chosen_params"),
            "stopped": st.get("stopped"),
            "variants": [
                {k: v for k, v in e.items() if k in ("params", "ratio", "accurate", "error")}
                for e in tried
            ],
        }
    }


def op_profiles(
    made: list[dict[str, Any]], choice: dict[str, Any] | None, threads: int, runs: int = 50
) -> dict[str, Any]:
    """Per-operator profiles of ORT FP32 and of kfedge's choice (:mod:`benchmarks.opprofile`).

    Each in a fresh process without TensorFlow, after the timing rounds.

    Returns:
        ``{name: profile}``; a profile that failed says why (``available`` false).
    """
    by = {e["name"]: e for e in made}
    names = [BASELINE] + ([choice["name"]] if choice and choice["name"] != BASELINE else [])
    out: dict[str, Any] = {}
    for name in names:
        if name not in by:
            continue
        log(f"profiling {name} per operator ({threads} thread(s))")
        args = [by[name]["path"], "--threads", str(threads), "--runs", str(runs)]
        try:
            out[name] = run_json_child("benchmarks.opprofile", args)
        except RuntimeError as exc:
            out[name] = {"available": False, "reason": str(exc).splitlines()[0][:300]}
    return out


def reference_candidate(fp32_onnx: Path, data: Path, work: Path, samples: int) -> dict[str, Any]:
    """The hand-written ONNX Runtime static QDQ reference (or its failure)."""
    from benchmarks.references import ort_static_qdq

    out = work / ORT_REFERENCE / "model.onnx"
    try:
        log(f"{fp32_onnx.parent.name}: hand-written ORT static QDQ reference")
        res = ort_static_qdq(fp32_onnx, data, out, samples)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        return failure(ORT_REFERENCE, "reference", exc)
    return entry(ORT_REFERENCE, "reference", "onnx", out, res["seconds"], settings=res["settings"])


class TensorFlowLoaded(RuntimeError):
    """A timing process had TensorFlow loaded: its measurement would be wrong."""


def time_side_by_side(
    entries: list[dict[str, Any]],
    cfg: SideBySideConfig,
    failed: list[dict[str, Any]] | None = None,
) -> dict[str, dict[int, list[dict[str, float]]]]:
    """Time every entry in ``cfg.rounds`` interleaved rounds at each thread count.

    Each block runs in a fresh ``python -m benchmarks.child`` process (no TensorFlow), with
    the entry's ``env`` added to its environment (e.g. ``ONEDNN_MAX_CPU_ISA``). A file whose
    timing process fails is dropped from every round and recorded in ``failed``.

    Returns:
        ``{name: {threads: [per-round {"p50", "p90", "p99", "n"}]}}`` (timed files only; an
        OpenVINO file's rounds also name its CPU kernels, ``kernels``).

    Raises:
        TensorFlowLoaded: A timing process had TensorFlow loaded.
    """
    names = [e["name"] for e in entries]
    by = {e["name"]: e for e in entries}
    out: dict[str, dict[int, list[dict[str, float]]]] = {
        n: {t: [] for t in cfg.threads} for n in names
    }
    dropped: set[str] = set()
    for r, t, name in interleaved_rounds(names, cfg.rounds, cfg.threads, dropped):
        log(f"round {r + 1}/{cfg.rounds}, {t} thread(s): {name}")
        time.sleep(cfg.pause_s)
        path = by[name]["path"]
        args = ["block", path, "--threads", str(t), "--runs", str(cfg.runs)]
        args += ["--warmup", str(cfg.warmup), "--budget", str(cfg.budget_s)]
        try:
            res = run_json_child("benchmarks.child", args, env=by[name].get("env"))
        except RuntimeError as exc:
            dropped.add(name)
            if failed is not None:
                failed.append(failure(name, by[name]["kind"], f"timing failed: {exc}"))
            continue
        if res["tensorflow_loaded"]:
            raise TensorFlowLoaded("the timing process imported TensorFlow")
        p = res["models"][path]
        out[name][t].append({k: p[k] for k in ("p50", "p90", "p99", "n", "kernels") if k in p})
    return {n: v for n, v in out.items() if n not in dropped}


def summarize(
    entries: list[dict[str, Any]],
    timing: dict[str, dict[int, list[dict[str, float]]]],
    threads: tuple[int, ...],
) -> list[dict[str, Any]]:
    """Rows: per thread count the median p50 with its CI and the paired ratios."""
    from kfedge.stats import median_ci, ratio_estimate

    rows = []
    for e in entries:
        row = {k: v for k, v in e.items() if k != "path"}
        row["file"] = Path(e["path"]).name
        row["latency"] = {}
        for t in threads:
            per = timing[e["name"]][t]
            p50s = [p["p50"] for p in per]
            lo, hi = median_ci(p50s)
            lat: dict[str, Any] = {
                "p50": median(p50s),
                "p50_ci": [lo, hi],
                "p90": median([p["p90"] for p in per]),
                "p50_rounds": p50s,
                "runs_per_round": [int(p["n"]) for p in per],
                "spread": spread(p50s),
            }
            if kernels := next((p["kernels"] for p in per if p.get("kernels")), None):
                lat["kernels"] = kernels
            for key, ref in (("vs_ort_fp32", BASELINE), ("vs_format_fp32", None)):
                ref = ref or FORMAT_FP32.get(e["format"])
                if ref in timing and ref != e["name"]:
                    ref_p50s = [p["p50"] for p in timing[ref][t]]
                    lat[key] = {"reference": ref, **ratio_estimate(p50s, ref_p50s).to_dict()}
                else:
                    lat[key] = None
            row["latency"][str(t)] = lat
        rows.append(row)
    return rows


def run_model(
    key: str,
    work: Path,
    cfg: SideBySideConfig,
    peers: Any | None = None,
) -> dict[str, Any]:
    """The whole section for one model.

    Args:
        key: Model key (:data:`benchmarks.models.MODELS`).
        work: Scratch directory.
        cfg: Parameters.
        peers: A callable ``(label, fp32_onnx, dataset, work) -> (entries, peer_info)`` that
            adds the peers' files (None: no peers).

    Returns:
        ``{"model", "label", "builder", "params", "input_shape", "classes", "rows", "failed",
        "peers"}`` plus scratch paths under keys starting with ``_``.
    """
    s = bmodels.spec(key)
    log(f"building {s.label} (weights=None)")
    prep = bmodels.prepare(s, work / "model", cfg.per_split)
    made, failed = kfedge_candidates(prep["keras"], prep["dataset"], work / "candidates", cfg)
    by = {e["name"]: e for e in made}
    peer_info = None
    if BASELINE in by:
        fp32 = Path(by[BASELINE]["path"])
        if cfg.reference:
            ref = reference_candidate(
                fp32, prep["dataset"], work / "references", cfg.calibration_samples
            )
            (failed if ref.get("status") == "failed" else made).append(ref)
        if peers is not None:
            peer_entries, peer_info = peers(s.label, fp32, prep["dataset"], work / "peers")
            for pe in peer_entries:
                (failed if pe.get("status") == "failed" else made).append(pe)
    timing = time_side_by_side(made, cfg, failed)
    made = [e for e in made if e["name"] in timing]
    rows = summarize(made, timing, cfg.threads)
    t_choice = max(cfg.threads)
    choice = kfedge_choice(rows, t_choice, GOALS.get(key))
    return {
        "model": key,
        "label": s.label,
        "builder": s.builder,
        "params": prep["params"],
        "input_shape": list(s.input_shape),
        "classes": s.classes,
        "rows": rows,
        "choice": choice,
        "profiles": op_profiles(made, choice, t_choice),
        "goal": GOALS.get(key),
        "failed": failed,
        "peers": peer_info,
        # scratch paths for later sections (benchmarks.run drops "_" keys before saving)
        "_keras": str(prep["keras"]),
        "_dataset": str(prep["dataset"]),
        "_model_dir": str(work / "model"),
        "_files": {e["name"]: e["path"] for e in made},
    }


def run(work: Path, cfg: SideBySideConfig, peers: Any | None = None) -> dict[str, Any]:
    """Every model of ``cfg``; see :func:`run_model`."""
    work.mkdir(parents=True, exist_ok=True)
    return {
        "config": cfg.to_dict(),
        "models": [run_model(k, work / k, cfg, peers) for k in cfg.models],
    }
