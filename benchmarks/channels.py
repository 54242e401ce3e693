"""Section: channel pruning (``channel-prune``): real-size latency, sample accuracy, goals.

Latency and size on real-size models, accuracy against the ratio on the sample, and the
issue's goals for it:

1. Real size: MobileNetV2-224 and ResNet50 from ``keras.applications`` with random weights
   (:mod:`benchmarks.models`). kfedge makes ORT FP32 (``fp32-onnx``, every ratio's
   denominator), ``onnx-int8-static`` and ``openvino-int8`` of the whole model, and, at each
   ratio, ``channel-prune`` chained into ``onnx-int8-static`` and into ``fp32-onnx``. With
   random weights fine-tuning cannot teach anything, so the pruned models get the least
   fine-tuning the technique allows (one epoch over the random train split); the
   parameters, MACs and files are what the ratio makes. Every file is timed in the same
   interleaved rounds, each block in a fresh process without TensorFlow
   (:func:`benchmarks.realsize.time_side_by_side`), ratios paired by round
   (:func:`kfedge.stats.ratio_estimate`).
2. The sample (``sample://digits`` and its trained baseline, as :mod:`benchmarks.seeds` makes
   them): ``channel-prune`` with real fine-tuning at each ratio, FP32 (``fp32-onnx``) and
   INT8 (``onnx-int8-static``) chained from it, top-1 on the eval split against the baseline's
   FP32 ONNX; and one ``ratio: "auto"`` run (the ratio it chose, its tries, its search time).
3. The CPU's ISA (:func:`kfedge.cpu.detect_isa`): the renderer
   (:mod:`benchmarks.render_channels`) judges the goal of this CPU's class from the figures.

:func:`measure` returns the JSON-able section.
"""

from __future__ import annotations

import platform
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import models as bmodels
from benchmarks.choice import BASELINE
from benchmarks.common import Stopwatch, log
from benchmarks.text import pair_estimate

#: The issue's goals: on MobileNetV2-224, the channel-pruned INT8 file at most this ratio to
#: ORT FP32 per CPU class, at most :data:`GOAL_DROP_POINTS` accuracy points lost on the sample
#: at the same ratio.
GOAL_MODEL = "mobilenetv2-224"
GOAL_RATIOS = {"no_vnni": 0.50, "vnni": 0.30}
GOAL_DROP_POINTS = 1.0
#: The file the goals judge, and the full model's INT8 file it is compared with.
INT8_STEP = "onnx-int8-static"
FP32_STEP = BASELINE
#: The other INT8 runtime the pruned models are chained into (from their FP32 ONNX file).
OPENVINO_STEP = "openvino-int8"
#: Olive's run on each FP32 ONNX file (:data:`benchmarks.peers.MODES`): its defaults.
OLIVE_MODE = "static-default"
#: The sample part's key of each INT8 step's accuracy.
SAMPLE_KEY = {INT8_STEP: "int8", OPENVINO_STEP: "int8_openvino"}
#: The ``auto`` run's accuracy bound (a fraction: one point).
AUTO_MAX_DROP = 0.01


@dataclass
class ChannelsConfig:
    """Parameters of the channel-pruning section.

    Attributes:
        models: Keys of :data:`benchmarks.models.MODELS` (real-size part).
        ratios: Ratios of the real-size part.
        threads: Thread counts every file is timed at (the goals read the largest).
        rounds: Interleaved rounds (the order changes every round).
        runs: Most timed batch-1 runs per block.
        warmup: Untimed runs before each block.
        budget_s: Seconds of timed runs per block (at least 5 runs).
        pause_s: Pause before each block.
        per_split: Random samples per split of the real-size models (train has twice as many).
        calibration_samples: Calibration samples of the real-size INT8 files.
        openvino: Make and time ``openvino-int8`` of the whole model too.
        fine_tune_batch: Largest fine-tune batch of the real-size pruned models (one epoch,
            the technique's least, over the train split in batches of at most this many:
            a whole 224x224 train split in one batch would need several GiB for ResNet50).
        sample_ratios: Ratios of the sample part.
        sample_epochs: Fine-tune epochs on the sample (None: the technique's default).
        auto: Run ``ratio: "auto"`` on the sample.
        auto_max_accuracy_drop: Its accuracy bound (a fraction).
        auto_search_ratios: Its ratios (None: the technique's default).
        baseline_epochs: Most epochs of the sample baseline when it is trained here.
        int8_isa: ``isa`` of every ``onnx-int8-static`` file (None: the technique's default,
            any x86-64, as the side-by-side section makes it).
        isa_limit: On an x86-64 CPU with VNNI, also time every OpenVINO file with oneDNN
            limited to this ISA (``ONEDNN_MAX_CPU_ISA``; ``"AVX2"``: what a CPU without VNNI
            runs), each as its own file ``<name>@<isa>`` in the same rounds. The kernels each
            block ran are recorded, so the rows show the limit took. None: not.
    """

    models: tuple[str, ...] = ("mobilenetv2-224", "resnet50")
    ratios: tuple[float, ...] = (0.25, 0.5)
    threads: tuple[int, ...] = (2,)
    rounds: int = 5
    runs: int = 200
    warmup: int = 5
    budget_s: float = 3.0
    pause_s: float = 1.0
    per_split: int = 32
    calibration_samples: int = 32
    openvino: bool = True
    fine_tune_batch: int = 16
    sample_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    sample_epochs: int | None = None
    auto: bool = True
    auto_max_accuracy_drop: float = AUTO_MAX_DROP
    auto_search_ratios: tuple[float, ...] | None = None
    baseline_epochs: int = 30
    int8_isa: str | None = None
    isa_limit: str | None = "AVX2"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        d = dict(self.__dict__)
        for k in ("models", "ratios", "threads", "sample_ratios", "auto_search_ratios"):
            d[k] = None if d[k] is None else list(d[k])
        return d


def pct(ratio: float) -> int:
    """``0.25`` -> ``25`` (the candidate names' tag)."""
    return round(float(ratio) * 100)


def int8_params(cfg: ChannelsConfig) -> dict[str, Any]:
    """The ``onnx-int8-static`` parameters the config sets (``isa``), else none."""
    return {} if cfg.int8_isa is None else {"isa": cfg.int8_isa}


def _failure(name: str, exc: BaseException) -> dict[str, Any]:
    from benchmarks.realsize import failure

    traceback.print_exc()
    return failure(name, "kfedge", exc)


def _prune_facts(st: dict[str, Any]) -> dict[str, Any]:
    """What a ``channel-prune`` candidate's stats say about the pruned model."""
    keys = (
        "ratio",
        "criterion",
        "params_before",
        "params_after",
        "params_ratio",
        "macs_before",
        "macs_after",
        "macs_ratio",
        "channels_before",
        "channels_after",
        "fine_tune_seconds",
        "fine_tune_steps",
        "train_accuracy",
    )
    return {k: st.get(k) for k in keys}


# -- 1. real size ----------------------------------------------------------------------------
def make_files(
    keras_path: Path, data: Path, work: Path, cfg: ChannelsConfig, params: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Make the whole model's files and each ratio's pruned FP32 and INT8 files.

    Returns:
        ``(made, failed, pruned)``: entries to time (:func:`benchmarks.realsize.entry` plus
        ``ratio``, ``precision``, ``params``, ``macs``, ``prune_seconds``), failures, and per
        ratio tag the ``channel-prune`` run's facts.
    """
    from benchmarks.realsize import entry, failure
    from kfedge import techniques
    from kfedge.candidate import model_path
    from kfedge.data import read_info

    made: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    pruned: dict[str, Any] = {}
    train = int(read_info(data).counts["train"])

    def apply(name: str, technique: str, source: Path, p: dict[str, Any]) -> tuple[Any, float]:
        log(f"{keras_path.stem}: {name} ({technique})")
        with Stopwatch() as sw:
            cand = techniques.apply(technique, source, data, p, work / name)
        return cand, round(sw.seconds, 2)

    def add(name: str, cand: Any, seconds: float, **facts: Any) -> None:
        made.append(
            entry(
                name,
                "kfedge",
                cand.format,
                model_path(work / name),
                seconds,
                technique=cand.technique,
                settings=cand.stats.get("int8_settings"),
                **facts,
            )
        )

    full = {"ratio": None, "params": params, "macs": None, "prune_seconds": None}
    calib = {"calibration_samples": cfg.calibration_samples}
    int8 = {**calib, **int8_params(cfg)}
    plan = [(FP32_STEP, keras_path, {}, "fp32"), (INT8_STEP, work / FP32_STEP, int8, "int8")]
    if cfg.openvino:
        plan.append((OPENVINO_STEP, work / FP32_STEP, calib, "int8"))
    for name, source, p, precision in plan:
        if name != FP32_STEP and not any(e["name"] == FP32_STEP for e in made):
            failed.append(failure(name, "kfedge", f"not made: {FP32_STEP} failed"))
            continue
        try:
            cand, seconds = apply(name, name, source, p)
        except Exception as exc:  # noqa: BLE001 - one failed file must not end the run
            failed.append(_failure(name, exc))
            continue
        add(name, cand, seconds, precision=precision, **full)
    for ratio in cfg.ratios:
        tag = f"channel-prune-{pct(ratio)}"
        try:
            # random weights: the least fine-tuning the technique allows (one epoch)
            p = {"ratio": ratio, "epochs": 1, "batch_size": min(train, cfg.fine_tune_batch)}
            cp, cp_seconds = apply(tag, "channel-prune", keras_path, p)
        except Exception as exc:  # noqa: BLE001
            failed.append(_failure(tag, exc))
            continue
        facts = _prune_facts(cp.stats)
        pruned[tag] = {
            **facts,
            "seconds": cp_seconds,
            "train_samples": train,
            "batch_size": p["batch_size"],
        }
        if full["macs"] is None:
            full["macs"] = facts["macs_before"]
            for e in made:
                if e["ratio"] is None:
                    e["macs"] = facts["macs_before"]
        steps = [(FP32_STEP, {}, "fp32", work / tag), (INT8_STEP, int8, "int8", work / tag)]
        if cfg.openvino:  # from the pruned FP32 ONNX, as the whole model's
            steps.append((OPENVINO_STEP, calib, "int8", work / f"{tag}-{FP32_STEP}"))
        for step, p, precision, src in steps:
            name = f"{tag}-{step}"
            try:
                cand, seconds = apply(name, step, src, p)
            except Exception as exc:  # noqa: BLE001
                failed.append(_failure(name, exc))
                continue
            add(
                name,
                cand,
                seconds,
                ratio=ratio,
                precision=precision,
                params=facts["params_after"],
                macs=facts["macs_after"],
                prune_seconds=cp_seconds,
            )
    return made, failed, pruned


def limits_apply() -> bool:
    """Whether ``isa_limit`` applies here: an x86-64 CPU with VNNI (see :func:`isa_limited`)."""
    cpu = cpu_facts()
    return bool(cpu["vnni"]) and str(cpu["arch"]).lower() in ("x86_64", "amd64")


def isa_limited(made: list[dict[str, Any]], isa: str | None, applies: bool) -> list[dict[str, Any]]:
    """Each OpenVINO file again, timed with oneDNN limited to ``isa`` (see ``isa_limit``).

    Only where it ``applies`` (:func:`limits_apply`: an x86-64 CPU with VNNI; elsewhere the
    plain rows already are the CPU without it). The
    twin is named ``<name>@<isa>`` and carries ``isa_limit`` and the ``env`` its timing
    processes get. OpenVINO's CPU plugin takes its kernels from oneDNN and its own JIT code,
    and both ask oneDNN which ISA they may use; ONNX Runtime's kernels (MLAS) read the CPU
    directly and cannot be limited, so the ORT files keep the CPU's own ISA.
    """
    if isa is None or not applies:
        return []
    return [
        {
            **e,
            "name": f"{e['name']}@{isa.lower()}",
            "isa_limit": isa,
            "env": {"ONEDNN_MAX_CPU_ISA": isa},
        }
        for e in made
        if e.get("format") == "openvino"
    ]


def olive_files(
    made: list[dict[str, Any]], olive: Any, data: Path, work: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Olive's INT8 (``OnnxStaticQuantization``, its defaults) of each FP32 ONNX file.

    The whole model's ``fp32-onnx`` and each ratio's pruned one, calibrated on the same
    calibration split as kfedge's files (:func:`benchmarks.peers.run_olive`): Olive has no
    structured pruning for CNNs, so it quantizes what ``channel-prune`` made.

    Returns:
        ``(entries, failures)``: entries named ``[<tag>-]olive-static-default``.
    """
    from benchmarks.peers import run_olive

    out: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    step = f"olive-{OLIVE_MODE}"
    for e in made:
        if e.get("technique", "").split(">")[-1] != FP32_STEP:
            continue
        prefix = "" if e["ratio"] is None else e["name"].removesuffix(FP32_STEP)
        where = work / (prefix or "full")
        res = run_olive(OLIVE_MODE, Path(e["path"]), data, where, olive.cfg)
        res["name"] = f"{prefix}{step}"
        if res.get("status") == "failed":
            failed.append(res)
            continue
        technique = step if e["ratio"] is None else f"channel-prune>{step}"
        keep = ("ratio", "params", "macs", "prune_seconds")
        out.append({**res, **{k: e[k] for k in keep}, "precision": "int8", "technique": technique})
    return out, failed


def add_pairs(rows: list[dict[str, Any]], threads: tuple[int, ...]) -> None:
    """Add each pruned file's paired ratios to its FP32 file and to the whole model's file.

    ``vs_pruned_fp32``: to the same ratio's pruned FP32 file; ``vs_full_same_precision``: to
    the whole model's file of the same precision and step (``onnx-int8-static``...) and the
    same ISA limit.
    """

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return r.get("ratio"), r.get("precision"), r["technique"].split(">")[-1], r.get("isa_limit")

    by_key = {key(r): r for r in rows}
    for r in rows:
        if r.get("ratio") is None:
            continue
        step = r["technique"].split(">")[-1]
        fp32 = by_key.get((r["ratio"], "fp32", FP32_STEP, None))
        full = by_key.get((None, r["precision"], step, r.get("isa_limit")))
        for t in map(str, threads):
            lat = r["latency"][t]
            rounds = lat["p50_rounds"]
            lat["vs_pruned_fp32"] = (
                pair_estimate(rounds, fp32["latency"][t]["p50_rounds"])
                if fp32 is not None and fp32 is not r
                else None
            )
            est = None if full is None else pair_estimate(rounds, full["latency"][t]["p50_rounds"])
            lat["vs_full_same_precision"] = est and {"reference": full["name"], **est}


def real_model(
    key: str,
    work: Path,
    cfg: ChannelsConfig,
    model_dir: Path | None = None,
    olive: Any | None = None,
) -> dict[str, Any]:
    """The real-size part for one model: make its files, time them side by side.

    Args:
        key: Model key (:data:`benchmarks.models.MODELS`).
        work: Scratch directory.
        cfg: Parameters.
        model_dir: Where :func:`benchmarks.models.prepare` already built the model (reused).
        olive: A :class:`benchmarks.peers.Olive` that can run: Olive's INT8 of each FP32 ONNX
            file is timed too (:func:`olive_files`). None: no Olive files.

    Returns:
        ``{"model", "label", "builder", "params", "input_shape", "classes", "train_samples",
        "rows", "pruned", "failed"}``.
    """
    from benchmarks.realsize import summarize, time_side_by_side
    from kfedge.data import read_info

    s = bmodels.spec(key)
    log(f"channels: building {s.label} (weights=None)")
    prep = bmodels.prepare(s, model_dir or work / "model", cfg.per_split)
    made, failed, pruned = make_files(
        prep["keras"], prep["dataset"], work / "candidates", cfg, prep["params"]
    )
    if olive is not None:
        peer, peer_failed = olive_files(made, olive, prep["dataset"], work / "olive")
        made += peer
        failed += peer_failed
    made += isa_limited(made, cfg.isa_limit, limits_apply())
    timing = time_side_by_side(made, cfg, failed)  # type: ignore[arg-type]
    made = [e for e in made if e["name"] in timing]
    rows = summarize(made, timing, cfg.threads)
    add_pairs(rows, cfg.threads)
    return {
        "model": key,
        "label": s.label,
        "builder": s.builder,
        "params": prep["params"],
        "input_shape": list(s.input_shape),
        "classes": s.classes,
        "train_samples": int(read_info(prep["dataset"]).counts["train"]),
        "rows": rows,
        "pruned": pruned,
        "failed": failed,
    }


# -- 2. the sample ---------------------------------------------------------------------------
def eval_accuracy(model_file: Path, dataset: Path, threads: int = 2) -> dict[str, Any]:
    """Top-1 of a model file on the eval split (kfedge's runner), with its Wilson interval."""
    from kfedge.accuracy import num_classes, score
    from kfedge.data import read_info
    from kfedge.runners import load_runner
    from kfedge.stats import wilson_interval

    runner = load_runner(model_file, threads=threads)
    try:
        n_cls = num_classes(runner, dataset, read_info(dataset))
        s = score(runner, dataset, "eval", 64, None, n_cls)
    finally:
        runner.close()
    n = int(s.num_samples)
    return {
        "accuracy": float(s.accuracy),
        "accuracy_ci": list(wilson_interval(round(s.accuracy * n), n)),
        "num_samples": n,
    }


def _exports(
    name: str,
    source: Path,
    data: Path,
    work: Path,
    base_acc: float | None,
    int8: dict[str, Any] | None = None,
    openvino: bool = False,
    isa_limit: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """FP32 ONNX and ONNX INT8 of ``source`` (a candidate or model), scored on the eval split.

    With ``openvino``, also ``openvino-int8`` (NNCF defaults) of the FP32 ONNX file; with
    ``isa_limit`` too, that file is scored again in a process whose OpenVINO is limited to that
    ISA (:func:`limited_accuracy`), as ``int8_openvino_<isa>``: INT8 accuracy depends on the
    kernels that run it, so the limited rows' goal reads this one.

    Returns:
        ``({"fp32": {...}, "int8": {...}, "int8_openvino": {...}}, failures)``; each with
        ``accuracy``,
        ``accuracy_ci``, ``num_samples``, ``delta_points`` (against ``base_acc``),
        ``technique``, ``seconds``, ``size_bytes``.
    """
    from benchmarks.common import file_sizes
    from kfedge import techniques
    from kfedge.candidate import model_path

    out: dict[str, Any] = {}
    failed: list[dict[str, Any]] = []
    steps = [("fp32", FP32_STEP, {}, source), ("int8", INT8_STEP, int8 or {}, source)]
    if openvino:
        steps.append(("int8_openvino", OPENVINO_STEP, {}, work / f"{name}-{FP32_STEP}"))
    for precision, step, params, src in steps:
        dest = work / f"{name}-{step}"
        try:
            log(f"channels sample: {name} > {step}")
            with Stopwatch() as sw:
                cand = techniques.apply(step, src, data, params, dest)
            acc = eval_accuracy(model_path(dest), data)
        except Exception as exc:  # noqa: BLE001
            failed.append(_failure(f"{name}-{step}", exc))
            continue
        delta = None if base_acc is None else round(100 * (acc["accuracy"] - base_acc), 4)
        out[precision] = {
            **acc,
            "delta_points": delta,
            "technique": cand.technique,
            "seconds": round(sw.seconds, 2),
            **{k: v for k, v in file_sizes(model_path(dest)).items() if k != "size_files"},
        }
        if step == OPENVINO_STEP and isa_limit:
            key = limited_key(SAMPLE_KEY[OPENVINO_STEP], isa_limit)
            try:
                lim = limited_accuracy(model_path(dest), data, isa_limit)
            except RuntimeError as exc:
                failed.append(_failure(f"{name}-{step}@{isa_limit.lower()}", exc))
                continue
            d = None if base_acc is None else round(100 * (lim["accuracy"] - base_acc), 4)
            out[key] = {**out[precision], **lim, "delta_points": d, "isa_limit": isa_limit}
    return out, failed


def limited_key(key: str, isa: str) -> str:
    """The sample's key of an accuracy measured under an ISA limit (``int8_openvino_avx2``)."""
    return f"{key}_{isa.lower()}"


def limited_accuracy(model_file: Path, dataset: Path, isa: str) -> dict[str, Any]:
    """:func:`eval_accuracy` in a fresh process whose oneDNN is limited to ``isa``.

    ``ONEDNN_MAX_CPU_ISA`` is read once, when OpenVINO's CPU plugin starts, so it needs its
    own process (``python -m benchmarks.channels accuracy``).

    Raises:
        RuntimeError: The process failed.
    """
    from benchmarks.common import run_json_child

    args = ["accuracy", str(model_file), str(dataset)]
    return run_json_child("benchmarks.channels", args, env={"ONEDNN_MAX_CPU_ISA": isa})


def sample_part(
    work: Path, cfg: ChannelsConfig, dataset: Path | None = None, baseline: Path | None = None
) -> dict[str, Any]:
    """Accuracy against the ratio on the sample, and the ``auto`` run.

    Args:
        work: Scratch directory.
        cfg: Parameters.
        dataset: The sample's split dataset (default: prepared here).
        baseline: Its trained baseline (default: trained here, as the seeds section does).

    Returns:
        ``{"training", "eval_samples", "train_samples", "epochs", "baseline": {"fp32",
        "int8"}, "ratios": [...], "auto": {...} or None, "failed"}``.
    """
    from benchmarks import seeds
    from kfedge import techniques
    from kfedge.data import read_info

    work.mkdir(parents=True, exist_ok=True)
    prep = seeds.prepare(
        work, seeds.SeedsConfig(baseline_epochs=cfg.baseline_epochs), dataset, baseline
    )
    data, base_model = prep["dataset"], prep["baseline"]
    counts = read_info(data).counts
    failed: list[dict[str, Any]] = []
    int8 = int8_params(cfg)
    limit = cfg.isa_limit if cfg.openvino and limits_apply() else None
    base, f = _exports(
        "baseline", base_model, data, work / "candidates", None, int8, cfg.openvino, limit
    )
    failed += f
    base_acc = base.get("fp32", {}).get("accuracy")
    if "int8" in base and base_acc is not None:
        base["int8"]["delta_points"] = round(100 * (base["int8"]["accuracy"] - base_acc), 4)
    tune = {} if cfg.sample_epochs is None else {"epochs": int(cfg.sample_epochs)}
    ratios = []
    for ratio in cfg.sample_ratios:
        tag = f"channel-prune-{pct(ratio)}"
        try:
            log(f"channels sample: {tag}")
            with Stopwatch() as sw:
                cp = techniques.apply(
                    "channel-prune", base_model, data, {"ratio": ratio, **tune}, work / tag
                )
        except Exception as exc:  # noqa: BLE001
            failed.append(_failure(tag, exc))
            continue
        files, f = _exports(
            tag, work / tag, data, work / "candidates", base_acc, int8, cfg.openvino, limit
        )
        failed += f
        ratios.append(
            {"name": tag, **_prune_facts(cp.stats), "seconds": round(sw.seconds, 2), **files}
        )
    auto = None
    if cfg.auto:
        params: dict[str, Any] = {
            "ratio": "auto",
            "max_accuracy_drop": cfg.auto_max_accuracy_drop,
            **tune,
        }
        if cfg.auto_search_ratios:
            params["search_ratios"] = list(cfg.auto_search_ratios)
        try:
            log("channels sample: channel-prune ratio auto")
            with Stopwatch() as sw:
                cp = techniques.apply("channel-prune", base_model, data, params, work / "auto")
            st = cp.stats
            search = st["search"]
            files, f = _exports(
                "channel-prune-auto",
                work / "auto",
                data,
                work / "candidates",
                base_acc,
                int8,
                cfg.openvino,
                limit,
            )
            failed += f
            auto = {
                **_prune_facts(st),
                "chosen_ratio": search["chosen_ratio"],
                "within_bound": search["within_bound"],
                "max_accuracy_drop": search["max_accuracy_drop"],
                "bound": search["bound"],
                "split": search["split"],
                "split_samples": search["samples"],
                "search_ratios": search["ratios"],
                "max_fine_tunes": search["max_fine_tunes"],
                "tries": search["trials"],
                "search_fine_tunes": st["search_fine_tunes"],
                "search_seconds": st["search_seconds"],
                "search_fine_tune_seconds": search["fine_tune_seconds"],
                "baseline_validation_accuracy": st["baseline_validation_accuracy"],
                "validation_accuracy": st["validation_accuracy"],
                "seconds": round(sw.seconds, 2),
                **files,
            }
        except Exception as exc:  # noqa: BLE001
            failed.append(_failure("channel-prune-auto", exc))
    return {
        "training": prep["training"],
        "train_samples": int(counts["train"]),
        "eval_samples": int(counts["eval"]),
        "epochs": cfg.sample_epochs,
        "baseline": base,
        "ratios": ratios,
        "auto": auto,
        "failed": failed,
    }


# -- 3. the CPU ------------------------------------------------------------------------------
def cpu_facts() -> dict[str, Any]:
    """The measuring CPU: model, arch, usable cores, SIMD flags, kfedge's ISA and its VNNI."""
    from benchmarks.common import machine
    from kfedge.cpu import detect_isa

    m = machine()
    isa = detect_isa()
    return {
        "cpu": m["cpu"],
        "arch": m["arch"] or platform.machine(),
        "usable_cores": m["usable_cores"],
        "simd": m["simd"],
        "isa": isa.name,
        "vnni": isa.vnni,
    }


def measure(
    cfg: ChannelsConfig | None = None,
    work: Path | None = None,
    model_dirs: dict[str, Path] | None = None,
    dataset: Path | None = None,
    baseline: Path | None = None,
    olive: Any | None = None,
) -> dict[str, Any]:
    """The whole section.

    Args:
        cfg: Parameters (default: the full run's).
        work: Scratch directory (default: a temporary one, removed afterwards).
        model_dirs: Model key -> a directory where :func:`benchmarks.models.prepare` already
            built it (the side-by-side section's; reused).
        dataset: The sample's split dataset (default: prepared here).
        baseline: The sample's trained baseline (default: trained here).
        olive: :class:`benchmarks.peers.Olive` (None, or one that cannot run: no Olive files;
            ``olive`` in the result says why).

    Returns:
        ``{"config", "cpu", "goal", "olive", "models": [...], "sample": {...}}`` (JSON-able).
    """
    cfg = cfg or ChannelsConfig()
    if work is None:
        with tempfile.TemporaryDirectory(prefix="kfedge-channels-") as tmp:
            return measure(cfg, Path(tmp), model_dirs, dataset, baseline, olive)
    work.mkdir(parents=True, exist_ok=True)
    dirs = model_dirs or {}
    out: dict[str, Any] = {
        "config": cfg.to_dict(),
        "cpu": cpu_facts(),
        "goal": {
            "model": GOAL_MODEL,
            "file": f"channel-prune>{INT8_STEP} or channel-prune>{OPENVINO_STEP}",
            "ratio_max": dict(GOAL_RATIOS),
            "drop_points_max": GOAL_DROP_POINTS,
            "threads": max(cfg.threads),
        },
    }
    status = (
        olive.status
        if olive is not None
        else {"available": False, "reason": "peers were not given to this section"}
    )
    out["olive"] = {
        "available": bool(status["available"]),
        "reason": status.get("reason", ""),
        "versions": status.get("versions", {}),
        "mode": OLIVE_MODE,
    }
    runner = olive if status["available"] else None
    out["models"] = [real_model(k, work / k, cfg, dirs.get(k), runner) for k in cfg.models]
    out["sample"] = sample_part(work / "sample", cfg, dataset, baseline)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.channels accuracy MODEL DATASET --json OUT``: one file's top-1.

    The process :func:`limited_accuracy` starts (its environment limits the CPU kernels).
    """
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m benchmarks.channels")
    ap.add_argument("mode", choices=["accuracy"])
    ap.add_argument("model", type=Path)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    a.json.write_text(json.dumps(eval_accuracy(a.model, a.dataset, a.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
