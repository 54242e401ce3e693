"""Markdown of the channel-pruning section: real-size latency and size, sample accuracy, goals.

Renders what :func:`benchmarks.channels.measure` returned; every figure and every verdict is
computed here from it (the goal that applies follows the recorded CPU's VNNI).
"""

from __future__ import annotations

from typing import Any

from benchmarks.channels import SAMPLE_KEY, limited_key
from benchmarks.common import mb
from benchmarks.text import (
    ci,
    fmt,
    md_table,
    ms,
    ratio_cell,
    relation,
    threads_word,
    unstable_note,
)

#: The section's title in BENCHMARKS.md.
TITLE = "12. Channel pruning: latency, size and accuracy against the ratio"
#: Goal classes: key -> (how the text names the class).
CLASSES = {"vnni": "a CPU with VNNI", "no_vnni": "a CPU without VNNI"}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _count(value: int | None, unit: float = 1.0, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value / unit, spec)


def _ratio_word(r: float | None) -> str:
    return "—" if r is None else f"{r:g}"


def _n(count: int, word: str) -> str:
    """``1 epoch`` / ``2 epochs``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def _macs(value: int | None) -> str:
    """``4.09 GMACs`` / ``10.7 MMACs``."""
    if not value:
        return "MACs n/a"
    return f"{value / 1e9:.2f} GMACs" if value >= 1e9 else f"{value / 1e6:.1f} MMACs"


def _threads(data: dict[str, Any]) -> list[str]:
    return [str(t) for t in data["config"]["threads"]]


# -- 1. real size ----------------------------------------------------------------------------
def _made(r: dict[str, Any]) -> str:
    """Time to make: the step, plus channel-prune for a pruned file."""
    step = r.get("seconds")
    prune = r.get("prune_seconds")
    if prune is None or step is None:
        return fmt(step, ".1f")
    return f"{prune + step:.1f} ({prune:.1f} + {step:.1f})"


def model_table(m: dict[str, Any], threads: list[str]) -> str:
    """One model's files: ratio, params, MACs, sizes, time to make, latency and ratio."""
    header = ["File", "Ratio", "Params", "MACs (M)", "Size (MB)", "gzip (MB)", "Time to make (s)"]
    for t in threads:
        header += [f"p50 ms @{t}t [95 % CI]", f"vs ORT FP32 @{t}t"]
    body = []
    for r in m["rows"]:
        cells = [
            f"`{r['name']}`",
            _ratio_word(r.get("ratio")),
            _count(r.get("params")),
            _count(r.get("macs"), 1e6, ",.1f"),
            fmt(mb(r.get("size_bytes")), ".3f"),
            fmt(mb(r.get("size_gzip_bytes")), ".3f"),
            _made(r),
        ]
        for t in threads:
            lat = r["latency"][t]
            cells.append(f"{ms(lat['p50'])} {ci(*lat['p50_ci'], spec='.3g')}")
            cells.append(ratio_cell(lat["vs_ort_fp32"], baseline=r["name"] == "fp32-onnx"))
        body.append(cells)
    return md_table(header, body)


def model_notes(m: dict[str, Any], threads: list[str]) -> list[str]:
    """What INT8 adds on the pruned model, and what pruning adds on the INT8 one."""
    notes = []
    by = {r["name"]: r for r in m["rows"]}
    for t in threads:
        for r in m["rows"]:
            if r.get("ratio") is None or r.get("precision") != "int8":
                continue
            lat = r["latency"][t]
            step = r["technique"].split(">")[-1]
            base = r["name"].split("@")[0]  # an ISA-limited twin: the file's own name
            fp32_name = base.removesuffix(f"-{step}") + "-fp32-onnx"  # the ratio's FP32
            at = f"`{r['name']}` at {threads_word(t)} is"
            if lat.get("vs_pruned_fp32") and fp32_name in by:
                rel = relation(lat["vs_pruned_fp32"], f"`{fp32_name}`")
                notes.append(f"INT8 on the pruned model: {at} {rel}.")
            full = lat.get("vs_full_same_precision")
            if full:
                rel = relation(full, f"`{full['reference']}`")
                notes.append(f"What pruning adds to INT8: {at} {rel}.")
    notes += kernel_notes(m, threads)
    if shaky := unstable_note(m["rows"], threads, " Trust these files' intervals."):
        notes.append(shaky)
    for f in m.get("failed", []):
        notes.append(f"`{f['name']}` could not be made or timed: {f['error']}")
    return notes


def _kernel_list(kernels: dict[str, int]) -> str:
    return ", ".join(f"`{k}` x{n}" for k, n in sorted(kernels.items(), key=lambda kv: -kv[1]))


def kernel_notes(m: dict[str, Any], threads: list[str]) -> list[str]:
    """The CPU kernels OpenVINO ran each file's layers on (as its timing process reported)."""
    notes = []
    for r in m["rows"]:
        for t in threads:
            kernels = (r["latency"].get(t) or {}).get("kernels")
            if not kernels:
                continue
            limit = f" with `ONEDNN_MAX_CPU_ISA={r['isa_limit']}`" if r.get("isa_limit") else ""
            notes.append(
                f"Kernels of `{r['name']}`{limit} at {threads_word(t)} (convolutions, fully "
                f"connected, matrix products): {_kernel_list(kernels)}."
            )
    return notes


def olive_line(data: dict[str, Any]) -> str:
    """Whether Olive's files are in the tables, which Olive, or why not."""
    o = data.get("olive")
    if not o:
        return "Olive: not part of this run's section (results from before it was added)."
    if not o["available"]:
        return f"Olive: not run ({o['reason']}); its rows are missing."
    v = o.get("versions", {})
    return (
        f"Olive {v.get('olive-ai', '?')} (its own virtualenv, ONNX Runtime "
        f"{v.get('onnxruntime', '?')}): `olive run` with `OnnxStaticQuantization` and its "
        "default settings on each FP32 ONNX file, the whole model's and each ratio's pruned one "
        "(rows `...olive-static-default`), calibrated on the same split: Olive has no "
        "structured pruning for CNNs, so it quantizes what `channel-prune` made. Its files "
        "are timed with kfedge's ONNX Runtime in the same rounds; the sample's accuracy is "
        "not measured for them, so the goals do not judge them."
    )


def real_md(data: dict[str, Any]) -> list[str]:
    """The real-size part: method, then each model's table and notes."""
    cfg = data["config"]
    threads = _threads(data)
    models = data.get("models", [])
    out = ["### Real-size models, random weights", ""]
    pruned = [p for m in models for p in m.get("pruned", {}).values()]
    tunes = sorted(
        {(p["train_samples"], p["batch_size"], p["fine_tune_steps"]) for p in pruned}
        if all("batch_size" in p for p in pruned)
        else set()
    )
    tune = "one epoch over the random train split" + (
        " ("
        + "; ".join(f"{n} images in batches of {b}: {_n(steps, 'step')}" for n, b, steps in tunes)
        + ")"
        if tunes
        else ""
    )
    builders = "; ".join(
        f"{m['label']} = `keras.applications.{m['builder']}(weights=None)`" for m in models
    )
    ov = ", `openvino-int8` (OpenVINO + NNCF defaults)" if cfg.get("openvino") else ""
    out.append(
        f"Models: {builders or 'none'}, with random weights (latency, size, parameters and "
        "MACs do not depend on the weights' values). Files: ORT FP32 (kfedge's `fp32-onnx`, "
        f"every ratio's denominator), `onnx-int8-static`{ov} of the whole model, and at ratio "
        f"{', '.join(f'{r:g}' for r in cfg['ratios'])} `channel-prune` (L1 ranking, the "
        "technique's `min_channels` / `round_to`) chained into `onnx-int8-static` and into "
        "`fp32-onnx`. With random weights fine-tuning cannot teach anything, so each pruned "
        f"model gets the least fine-tuning the technique allows: {tune}. Accuracy is "
        "meaningless here and not reported (the sample below carries it). INT8 files are "
        f"calibrated on {cfg['calibration_samples']} random images{_settings(models)}. Time "
        "to make: the step "
        "itself (the whole model's INT8 files start from its FP32 ONNX); for a pruned file, "
        "`channel-prune` (surgery, the fine-tune step, its TFLite export) + the step from its "
        f"Keras model. Timing: {cfg['rounds']} rounds in interleaved order at "
        f"{', '.join(threads_word(t) for t in threads)}; before each block a {cfg['pause_s']} s "
        f"pause, then a fresh process without TensorFlow, {cfg['warmup']} warm-up runs and timed "
        f"runs for {cfg['budget_s']} s (at least 5, at most {cfg['runs']}); ratios paired by round."
    )
    out += ["", olive_line(data), ""]
    for m in models:
        macs = next((r.get("macs") for r in m["rows"] if r.get("ratio") is None), None)
        out += [
            f"#### {m['label']}: {m['params']:,} parameters, {_macs(macs)}, {m['classes']} classes",
            "",
            model_table(m, threads),
            "",
        ]
        notes = model_notes(m, threads)
        if notes:
            out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return out


def _settings(models: list[dict[str, Any]]) -> str:
    """`` (kfedge's ONNX INT8 settings: ...)`` from the timed rows ("" when none recorded)."""
    seen: list[dict[str, Any]] = []
    for m in models:
        for r in m["rows"]:
            st = r.get("settings")
            if r.get("format") == "onnx" and isinstance(st, dict) and st not in seen:
                seen.append(st)
    parts = [f"reduce_range={st.get('reduce_range')}: {st.get('reason')}" for st in seen]
    return f" (kfedge's ONNX INT8 settings, {'; '.join(parts)})" if parts else ""


# -- 2. the sample ---------------------------------------------------------------------------
def _acc_cells(f: dict[str, Any] | None, made: bool = True) -> list[str]:
    """Top-1 with its interval and Δ; ``made`` False: the run did not make this file."""
    if not made:
        return ["not made", "n/a"]
    if not f:
        return ["failed", "n/a"]
    lo, hi = f["accuracy_ci"]
    return [f"{f['accuracy']:.4f} {ci(lo, hi, '.3f')}", _points(f.get("delta_points"))]


def sample_md(data: dict[str, Any]) -> list[str]:
    """The sample part: accuracy, params and MACs against the ratio; the ``auto`` run."""
    s = data.get("sample")
    out = ["### The sample: accuracy against the ratio", ""]
    if not s:
        return [*out, "Not measured in this run.", ""]
    base = s.get("baseline", {})
    epochs = s.get("epochs")
    ep = "the technique's default epochs" if epochs is None else _n(epochs, "epoch")
    tr = s.get("training")
    trained = (
        f"; trained here: {tr['eval_accuracy']:.4f} eval accuracy after {_n(tr['epochs'], 'epoch')}"
        if tr
        else ""
    )
    out.append(
        f"The sample's baseline (`sample://digits`, mobilenet_tiny 32x32x1{trained}); "
        f"`channel-prune` at each ratio fine-tunes {ep} on the {s['train_samples']} train "
        "images, then `fp32-onnx` and `onnx-int8-static` are made from its Keras model (and "
        "`openvino-int8` from that FP32 ONNX file, where measured; on a CPU with VNNI that "
        "file is scored again in a process with OpenVINO limited to AVX2, as the no-VNNI "
        "goal's rows are timed). Top-1 "
        f"on the {s['eval_samples']} eval images (each file's runtime, 95 % Wilson interval); Δ = "
        "points against the baseline's FP32 ONNX. Params and MACs ratios are the pruned "
        "model's against the baseline's (from `candidate.json`)."
    )
    out.append("")
    header = [
        "Model",
        "Params",
        "Params ratio",
        "MACs ratio",
        "Fine-tune (s)",
        "FP32 top-1 [95 % CI]",
        "Δ FP32",
        "INT8 top-1 [95 % CI]",
        "Δ INT8",
    ]
    ov = any("int8_openvino" in r for r in [base, *s["ratios"]])
    if ov:
        header += ["OpenVINO INT8 top-1 [95 % CI]", "Δ OV INT8"]
    lim = next((k for r in [base, *s["ratios"]] for k in r if k.startswith("int8_openvino_")), None)
    if lim:
        isa = lim.removeprefix("int8_openvino_").upper()
        header += [f"OpenVINO INT8 @{isa} top-1 [95 % CI]", f"Δ OV INT8 @{isa}"]
    body = []
    first = next(iter(s["ratios"]), None) or s.get("auto") or {}
    body.append(
        [
            "baseline",
            _count(first.get("params_before")),
            "1.00x",
            "1.00x",
            "-",
            *_acc_cells(base.get("fp32")),
            *_acc_cells(base.get("int8")),
            *(_acc_cells(base.get("int8_openvino")) if ov else []),
            *(_acc_cells(base.get(lim)) if lim else []),
        ]
    )
    rows = [(f"ratio {r['ratio']:g}", r) for r in s["ratios"]]
    auto = s.get("auto")
    if auto:
        rows.append((f'ratio "auto" (chose {auto["chosen_ratio"]:g})', auto))
    for label, r in rows:
        body.append(
            [
                label,
                _count(r.get("params_after")),
                fmt(r.get("params_ratio"), ".2f") + "x",
                fmt(r.get("macs_ratio"), ".2f") + "x",
                fmt(r.get("fine_tune_seconds"), ".1f"),
                *_acc_cells(r.get("fp32")),
                *_acc_cells(r.get("int8")),
                *(
                    _acc_cells(r.get("int8_openvino"), r is not auto or "int8_openvino" in r)
                    if ov
                    else []
                ),
                *(_acc_cells(r.get(lim), r is not auto or lim in r) if lim else []),
            ]
        )
    out += [md_table(header, body), ""]
    if auto:
        tries = "; ".join(
            f"{t['ratio']:g} -> {t['accuracy']:.4f} (drop {100 * t['accuracy_drop']:+.2f} "
            f"points, {'within' if t['within_bound'] else 'too lossy'})"
            for t in auto["tries"]
        )
        kept = (
            f"kept ratio {auto['chosen_ratio']:g}, the largest within the bound"
            if auto["within_bound"]
            else f"no ratio stayed within the bound: kept the most accurate, "
            f"{auto['chosen_ratio']:g}"
        )
        out.append(
            f'`ratio: "auto"` (`max_accuracy_drop` {auto["max_accuracy_drop"]:g}, judged on the '
            f"{auto['split']} split's {auto['split_samples']} images, where the baseline scores "
            f"{auto['baseline_validation_accuracy']:.4f}; bound {auto['bound']:.4f}; ratios "
            f"{', '.join(f'{r:g}' for r in auto['search_ratios'])}): "
            f"{_n(auto['search_fine_tunes'], 'fine-tune')} (at most {auto['max_fine_tunes']}) "
            f"in {auto['search_seconds']:.1f} s of "
            f"search wall time ({auto['search_fine_tune_seconds']:.1f} s fine-tuning); tries: "
            f"{tries}; {kept}. Whole run, export included: {auto['seconds']:.1f} s."
        )
        out.append("")
    for f in s.get("failed", []):
        out.append(f"- `{f['name']}` could not be made: {f['error']}")
    if s.get("failed"):
        out.append("")
    return out


# -- 3. goals --------------------------------------------------------------------------------
def goal_class(cpu: dict[str, Any]) -> str:
    """``vnni`` or ``no_vnni``: the goal class of the measuring CPU."""
    return "vnni" if cpu.get("vnni") else "no_vnni"


#: Kernel name parts that betray an ISA above AVX2 (an ISA-limited row must show none).
ABOVE_AVX2 = ("avx512", "amx", "vnni", "avx10")


def limit_took(r: dict[str, Any], t: str) -> bool:
    """Whether an ISA-limited row's kernels (at ``t`` threads) show no ISA above AVX2."""
    kernels = (r["latency"].get(t) or {}).get("kernels") or {}
    return bool(kernels) and not any(part in k.lower() for k in kernels for part in ABOVE_AVX2)


def judged_rows(data: dict[str, Any], model: dict[str, Any], cls: str) -> list[dict[str, Any]]:
    """``model``'s rows that speak for CPU class ``cls``.

    The CPU's own class: the rows timed as the CPU is. The other class, ``no_vnni`` on a CPU
    with VNNI: the rows timed with OpenVINO limited to AVX2 whose kernels show the limit took.
    """
    t = str(data["goal"]["threads"])
    if cls == goal_class(data["cpu"]):
        return [r for r in model["rows"] if not r.get("isa_limit")]
    if cls == "no_vnni":
        return [r for r in model["rows"] if r.get("isa_limit") and limit_took(r, t)]
    return []


def judge(data: dict[str, Any], model: dict[str, Any], cls: str | None = None) -> dict[str, Any]:
    """The goal of CPU class ``cls`` (default: this CPU's), judged on ``model``'s pruned INT8 files.

    Every pruned INT8 file that speaks for the class is judged (:func:`judged_rows`: ONNX
    Runtime's and OpenVINO's). Speed: met when the 95 % interval's slow end of the paired
    ratio to ORT FP32 is at most the goal (as kfedge judges a required speed-up). Accuracy:
    met when the sample's file of the same step at the same ratio loses at most the goal's
    points against the baseline's FP32.

    Returns:
        ``{"class", "goal", "drop_max", "threads", "ratios": [{"ratio", "name", "speed",
        "speed_met", "drop", "drop_met", "met"}], "met"}``.
    """
    g = data["goal"]
    cls = cls or goal_class(data["cpu"])
    goal = float(g["ratio_max"][cls])
    drop_max = float(g["drop_points_max"])
    t = str(g["threads"])
    sample = {round(float(r["ratio"]), 6): r for r in (data.get("sample") or {}).get("ratios", [])}
    out = []
    for r in judged_rows(data, model, cls):
        if r.get("ratio") is None or r.get("precision") != "int8":
            continue
        key = SAMPLE_KEY.get(r["technique"].split(">")[-1])
        if key is None:
            continue
        if r.get("isa_limit"):  # INT8 accuracy depends on the kernels: measured under the limit
            key = limited_key(key, r["isa_limit"])
        speed = (r["latency"].get(t) or {}).get("vs_ort_fp32")
        s = sample.get(round(float(r["ratio"]), 6)) or {}
        delta = (s.get(key) or {}).get("delta_points")
        drop = None if delta is None else 0.0 - float(delta)  # never "-0.00"
        speed_met = speed is not None and speed["high"] <= goal
        drop_met = drop is not None and drop <= drop_max
        out.append(
            {
                "ratio": r["ratio"],
                "name": r["name"],
                "speed": speed,
                "speed_met": speed_met,
                "drop": drop,
                "drop_met": drop_met,
                "met": speed_met and drop_met,
            }
        )
    return {
        "class": cls,
        "goal": goal,
        "drop_max": drop_max,
        "threads": t,
        "ratios": out,
        "met": any(x["met"] for x in out),
    }


def _judged_line(x: dict[str, Any], goal: float, drop_max: float) -> str:
    sp = x["speed"]
    if sp is None:
        speed = "not timed"
    else:
        speed = f"{sp['ratio']:.2f}x ORT FP32 [{sp['low']:.2f}, {sp['high']:.2f}]: " + (
            f"within <= {goal:.2f}x"
            if x["speed_met"]
            else f"misses <= {goal:.2f}x, the slow end by {sp['high'] - goal:.2f}"
            + (
                " (the point ratio is within it)"
                if sp["ratio"] <= goal
                else f", the point ratio by {sp['ratio'] - goal:.2f}"
            )
        )
    if x["drop"] is None:
        acc = "sample INT8 accuracy at this ratio not measured"
    elif x["drop_met"]:
        moved = f"loses {x['drop']:.2f}" if x["drop"] >= 0 else f"gains {-x['drop']:.2f}"
        acc = f"the sample's file of this step {moved} points: within {drop_max:g}"
    else:
        over = x["drop"] - drop_max
        acc = (
            f"the sample's file of this step loses {x['drop']:.2f} points: over {drop_max:g} "
            f"by {over:.2f}"
        )
    return (
        f"ratio {x['ratio']:g} (`{x['name']}`): {speed}; {acc} — {'met' if x['met'] else 'missed'}."
    )


def _class_verdict(data: dict[str, Any], model: dict[str, Any], cls: str) -> list[str]:
    """One class's verdict on ``model``: the bold line, then each judged ratio."""
    j = judge(data, model, cls)
    t = threads_word(data["goal"]["threads"])
    met = [x for x in j["ratios"] if x["met"]]
    if met:
        verdict = "met at ratio " + ", ".join(f"{r:g}" for r in sorted({x["ratio"] for x in met}))
    else:
        verdict = "missed at every measured ratio"
    out = [f"**Goal (<= {j['goal']:.2f}x on {CLASSES[cls]}, {t}): {verdict}.**", ""]
    return out + [f"- {_judged_line(x, j['goal'], j['drop_max'])}" for x in j["ratios"]] + [""]


def _limited_rows(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in model["rows"] if r.get("isa_limit")]


def _emulation_md(data: dict[str, Any], model: dict[str, Any]) -> list[str]:
    """The CPU-without-VNNI goal on a CPU with VNNI: OpenVINO limited to AVX2, or why not."""
    t = str(data["goal"]["threads"])
    limited = _limited_rows(model)
    rm = data["goal"]["ratio_max"]
    if not limited:
        return [
            f"The goal for {CLASSES['no_vnni']} (<= {rm['no_vnni']:.2f}x) was not measured in "
            "this run: it needs figures from such a CPU, or OpenVINO files timed with oneDNN "
            "limited to AVX2.",
            "",
        ]
    bad = [r["name"] for r in limited if not limit_took(r, t)]
    isa = limited[0]["isa_limit"]
    out = [
        f"The goal for {CLASSES['no_vnni']} (<= {rm['no_vnni']:.2f}x), from this CPU: the "
        f"OpenVINO files timed again with `ONEDNN_MAX_CPU_ISA={isa}` (rows `...@{isa.lower()}`), "
        "which limits OpenVINO's CPU kernels to what a CPU without VNNI or AVX-512 has; the "
        "kernels each such block ran are named in the notes above. ORT FP32, the denominator, "
        "still runs this CPU's AVX-512 kernels (ONNX Runtime's own kernels read the CPU and "
        "cannot be limited); on a CPU that has only AVX2 it would be slower, so these ratios "
        "overstate, not understate, what such a CPU gets. They are not figures from an AVX2 "
        "CPU: its caches, clock and memory differ.",
        "",
    ]
    if bad:
        out += [
            f"The limit did not take on {', '.join(f'`{n}`' for n in bad)} (kernels above AVX2 "
            "ran); those rows are not judged.",
            "",
        ]
    return out + _class_verdict(data, model, "no_vnni")


def goals_md(data: dict[str, Any]) -> list[str]:
    """The goals: which applies to this CPU, met or missed at each ratio and by how much."""
    g = data["goal"]
    cpu = data["cpu"]
    cls = goal_class(cpu)
    rm = g["ratio_max"]
    t = threads_word(g["threads"])
    out = ["### Goals", ""]
    out.append(
        f"The issue's goals: on MobileNetV2 1.0 224x224, the channel-pruned INT8 file "
        f"(`{g['file']}`) at most {rm['no_vnni']:.2f}x ORT FP32 on {CLASSES['no_vnni']} and at "
        f"most {rm['vnni']:.2f}x on {CLASSES['vnni']}, at {t}, with at most "
        f"{g['drop_points_max']:g} point of top-1 lost on the sample at the same ratio. Speed "
        "is judged on the 95 % interval's slow end (as kfedge judges a required speed-up), "
        "accuracy on the sample's INT8 file against the baseline's FP32."
    )
    out.append("")
    vn = "has VNNI" if cls == "vnni" else "has no VNNI"
    out.append(
        f"This CPU ({cpu['cpu']}, kfedge ISA `{cpu['isa']}`) {vn}: the goal that applies to "
        f"it is <= {rm[cls]:.2f}x."
        + (
            ""
            if cls == "vnni"
            else f" The goal for {CLASSES['vnni']} (<= {rm['vnni']:.2f}x) was not measured "
            "in this run: it needs figures from such a CPU."
        )
    )
    out.append("")
    target = next((m for m in data.get("models", []) if m["model"] == g["model"]), None)
    if target is None:
        measured = ", ".join(m["label"] for m in data.get("models", [])) or "no real-size model"
        out.append(
            f"This run measured {measured} instead of MobileNetV2 1.0 224x224, so it does not "
            "test the goal."
        )
        for m in data.get("models", []):
            j = judge(data, m)
            if j["ratios"]:
                out += ["", f"The goal's rule on {m['label']} (not the goal's model):"]
                out += [""] + [
                    f"- {_judged_line(x, j['goal'], j['drop_max'])}" for x in j["ratios"]
                ]
        return [*out, ""]
    if not judge(data, target)["ratios"]:
        out += [
            f"**Goal (<= {rm[cls]:.2f}x on {CLASSES[cls]}): not measured** — no channel-pruned "
            "INT8 file of the model was timed.",
            "",
        ]
    else:
        out += _class_verdict(data, target, cls)
    if cls == "vnni":
        out += _emulation_md(data, target)
    return [*out, ""]


def render_channels(data: dict[str, Any]) -> str:
    """The section's Markdown.

    Args:
        data: What :func:`benchmarks.channels.measure` returned.

    Returns:
        Markdown text (ends with a newline).
    """
    cpu = data["cpu"]
    vn = "with VNNI int8 dot products" if cpu.get("vnni") else "without VNNI"
    out = [f"## {TITLE}", ""]
    out.append(
        "What this shows: what `channel-prune` (whole channels removed, a smaller dense model, "
        "fine-tuned) does to parameters, MACs, file size and latency on real-size models, alone "
        "and chained into INT8; what it costs in accuracy on the sample at each ratio; and the "
        f"issue's goals for it. All figures come from {cpu['cpu']} ({cpu['arch']}, "
        f"{cpu.get('usable_cores')} usable cores; kfedge ISA `{cpu['isa']}`, {vn})."
    )
    out.append("")
    out += real_md(data)
    out += sample_md(data)
    out += goals_md(data)
    return "\n".join(out).rstrip() + "\n"
