"""Markdown of the real-size sections: side by side, Olive, compression (all computed from JSON)."""

from __future__ import annotations

from typing import Any

from benchmarks.choice import kfedge_choice
from benchmarks.common import mb
from benchmarks.text import (
    ci,
    fmt,
    md_table,
    ms,
    pair_estimate,
    ratio_cell,
    ratio_str,
    relation,
    threads_word,
    unstable_note,
    verdict,
)

#: How each kind of file is credited in the tables.
MADE_BY = {"kfedge": "kfedge", "reference": "hand-written ORT", "peer": "Olive"}
#: kfedge's ONNX INT8 file, compared with the hand-written reference and with Olive.
KFEDGE_ONNX_INT8 = "onnx-int8-static"
ORT_REFERENCE = "ort-static-qdq-reference"


def _threads(res: dict[str, Any]) -> list[str]:
    return [str(t) for t in res["config"]["threads"]]


def _fastest(rows: list[dict[str, Any]], t: str, pred: Any = None) -> dict[str, Any] | None:
    pool = [r for r in rows if pred is None or pred(r)]
    return min(pool, key=lambda r: r["latency"][t]["p50"]) if pool else None


def _vs(a: dict[str, Any], b: dict[str, Any], t: str) -> dict[str, Any] | None:
    return pair_estimate(a["latency"][t]["p50_rounds"], b["latency"][t]["p50_rounds"])


# -- side by side ----------------------------------------------------------------------------
def _settings(d: Any) -> str:
    """``key=value, ...`` of a settings mapping ("" for none)."""
    if not isinstance(d, dict) or not d:
        return ""
    return ", ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (dict, list)))


def _builders(models: list[dict[str, Any]]) -> str:
    """How each model was built, e.g. ``keras.applications.MobileNetV2(weights=None)``."""
    parts = []
    for m in models:
        if m.get("builder") == "mobilenet_tiny":
            parts.append(f"{m['label']} = `kfedge.sample.build_mobilenet_tiny()`")
        else:
            parts.append(f"{m['label']} = `keras.applications.{m['builder']}(weights=None)`")
    return "; ".join(parts) or "none"


def model_table(m: dict[str, Any], threads: list[str]) -> str:
    """One model's files: latency with CI and ratio to ORT FP32 per thread count, sizes."""
    header = ["File", "Made by", "Format"]
    for t in threads:
        header += [f"p50 ms @{t}t [95 % CI]", f"vs ORT FP32 @{t}t"]
    header += ["Size (MB)", "gzip (MB)", "Time to make (s)"]
    body = []
    for r in m["rows"]:
        cells = [f"`{r['name']}`", MADE_BY.get(r["kind"], r["kind"]), r["format"]]
        for t in threads:
            lat = r["latency"][t]
            cells.append(f"{ms(lat['p50'])} {ci(*lat['p50_ci'], spec='.3g')}")
            cells.append(ratio_cell(lat["vs_ort_fp32"], baseline=r["name"] == "fp32-onnx"))
        sizes = (mb(r["size_bytes"]), mb(r["size_gzip_bytes"]))
        if not ir_weights_counted(r):
            sizes = (None, None)
        cells += [fmt(sizes[0], ".3f"), fmt(sizes[1], ".3f"), fmt(r.get("seconds"), ".1f")]
        body.append(cells)
    return md_table(header, body)


def ir_weights_counted(r: dict[str, Any]) -> bool:
    """Whether a row's recorded size counts everything its runtime loads.

    False for an OpenVINO row whose size is the ``.xml`` alone: results from before the sizes
    named their files (``size_files``) counted the IR's graph without its ``.bin`` weights.
    """
    return r.get("format") != "openvino" or "size_files" in r


def model_notes(m: dict[str, Any], threads: list[str]) -> list[str]:
    """Computed interpretations of one model's table."""
    rows = m["rows"]
    by = {r["name"]: r for r in rows}
    notes = []
    for t in threads:
        best = _fastest(rows, t)
        if best is None:
            continue
        if best["name"] == "fp32-onnx":
            notes.append(
                f"At {threads_word(t)} the fastest file is ORT FP32 itself "
                f"({ms(best['latency'][t]['p50'])} ms)."
            )
        else:
            notes.append(
                f"At {threads_word(t)} the fastest file is `{best['name']}` "
                f"({MADE_BY.get(best['kind'], best['kind'])}, {ms(best['latency'][t]['p50'])} ms): "
                f"{relation(best['latency'][t]['vs_ort_fp32'], 'ORT FP32')}."
            )
        slower = [r["name"] for r in rows if verdict(r["latency"][t]["vs_ort_fp32"]) == "slower"]
        ties = [r["name"] for r in rows if verdict(r["latency"][t]["vs_ort_fp32"]) == "tie"]
        if slower:
            notes.append(
                f"Slower than ORT FP32 at {threads_word(t)}: "
                + ", ".join(f"`{n}`" for n in slower)
                + ". A quantized or converted file is not faster by being smaller; selection "
                "compares measured candidates."
            )
        if ties:
            notes.append(
                f"Not measurably different from ORT FP32 at {threads_word(t)}: "
                + ", ".join(f"`{n}`" for n in ties)
                + "."
            )
        k, ref = by.get(KFEDGE_ONNX_INT8), by.get(ORT_REFERENCE)
        if k and ref:
            chose = _settings(k.get("settings"))
            notes.append(
                f"kfedge's `{KFEDGE_ONNX_INT8}` at {threads_word(t)} is "
                f"{relation(_vs(k, ref, t), 'the hand-written ORT static QDQ reference')}"
                + (f"; kfedge chose {chose}." if chose else ".")
            )
        for r in rows:
            fr = r["latency"][t].get("vs_format_fp32")
            if r["format"] == "tflite" and fr and r["name"] != fr["reference"]:
                notes.append(
                    f"`{r['name']}` at {threads_word(t)} is "
                    f"{relation(fr, '`' + fr['reference'] + '` (same runtime)')}."
                )
    if unstable := unstable_note(
        rows, threads, " Trust these files' intervals, not their medians alone."
    ):
        notes.append(unstable)
    for f in m.get("failed", []):
        notes.append(f"`{f['name']}` could not be made: {f['error']}")
    return notes


#: The issue's goal for a PTQ candidate's accuracy drop on the sample, in points.
SAMPLE_DROP_GOAL = 0.5


def _sample_accuracy(name: str, sample: dict[str, Any] | None) -> str:
    """What the same technique did to the sample's accuracy (section 4), or ``""``."""
    row = next((r for r in (sample or {}).get("candidates", []) if r["name"] == name), None)
    if row is None or row.get("accuracy_delta_points") is None:
        return ""
    delta = row["accuracy_delta_points"]
    met = "met" if -delta <= SAMPLE_DROP_GOAL else f"missed by {-delta - SAMPLE_DROP_GOAL:.2f}"
    return (
        f" On the sample (section 4), `{name}` is {delta:+.2f} accuracy points against "
        f"`{row['reference']}` (goal: a drop of at most {SAMPLE_DROP_GOAL} point: {met})."
    )


def choice_of(m: dict[str, Any]) -> dict[str, Any] | None:
    """The choice of kfedge for one model, made now by the product's selection from the rows.

    The run's own ``choice`` (made by the rule of its day) only gives the thread count.
    """
    rows = m.get("rows") or []
    if not rows:
        return None
    stored = m.get("choice") or {}
    threads = stored.get("threads") or max(int(t) for t in rows[0]["latency"])
    return kfedge_choice(rows, int(threads), m.get("goal"))


def _choice_md(m: dict[str, Any], sample: dict[str, Any] | None = None) -> list[str]:
    """The candidate kfedge chooses for the model, against the issue's goals for it.

    Args:
        m: One model of the side-by-side section.
        sample: The seeds section (the same technique's accuracy drop on the sample), or None.
    """
    c = choice_of(m)
    if not c:
        return []
    lo, hi = c["ratio_ci"]
    line = (
        f"**kfedge's choice** (at {threads_word(str(c['threads']))}; {c['rule']}): "
        f"`{c['name']}`, {c['ratio']:.2f}x ORT FP32 [{lo:.2f}, {hi:.2f}] (simultaneous 95 %)"
    )
    tied = [n for n in c["tied"] if n != c["name"]]
    if tied:
        line += "; tied with it: " + ", ".join(f"`{n}`" for n in tied)
        by = {r["name"]: r for r in m["rows"]}
        if any(not ir_weights_counted(by[n]) for n in c["tied"] if n in by):
            line += (
                " (the size tie-break of this run saw the OpenVINO IR's .xml without its .bin "
                "weights, so which of the tied files is smallest is not known)"
            )
    goal = m.get("goal")
    if goal is not None:
        judged = "judged as kfedge judges a required speed-up, on the interval's slow end"
        if c["goal_met"]:
            line += f". Goal <= {goal:.2f}x ({judged}): met."
        else:
            line += f". Goal <= {goal:.2f}x ({judged}): missed, the slow end is {hi:.2f}x" + (
                f" (the point ratio {c['ratio']:.2f}x is within the goal)."
                if c["ratio"] <= goal
                else f"; the point ratio misses it by {c['ratio'] - goal:.2f} "
                f"({(c['ratio'] / goal - 1) * 100:.0f} % slower than the goal)."
            )
    else:
        line += "."
    return [line + _sample_accuracy(c["name"], sample), ""]


def _profile_md(m: dict[str, Any], top: int = 6) -> list[str]:
    """Where the time goes: each profiled file's largest operator types (runtime profilers)."""
    profs = m.get("profiles") or {}
    if not profs:
        return []
    out = [
        "Where the time goes (each runtime's own operator profiler, batch 1, per-run averages; "
        "operator time excludes the runtime's overhead between operators):",
        "",
    ]
    for name, p in profs.items():
        if not p.get("available"):
            out.append(f"- `{name}`: no profile ({p.get('reason', 'unknown')}).")
            continue
        ops = p["ops"][:top]
        parts = []
        for o in ops:
            k = [x for x in o.get("kernels", []) if x]
            ks = f" [{', '.join(k)}]" if k and p["runtime"].startswith("openvino") else ""
            parts.append(f"{o['op']} {o['ms']:.2f} ms ({o['share'] * 100:.0f} %){ks}")
        out.append(
            f"- `{name}` ({p['runtime']}, {p['runs']} runs, {threads_word(p['threads'])}, "
            f"{p['total_ms']:.2f} ms of operator time): " + ", ".join(parts) + "."
        )
    c, goal = choice_of(m), m.get("goal")
    cp = profs.get(c["name"]) if c else None
    if c and goal is not None and c["ratio"] > goal and cp and cp.get("available") and cp["ops"]:
        big = cp["ops"][0]
        out.append(
            f"- What limits `{c['name']}`: its largest operator type, {big['op']}, takes "
            f"{big['share'] * 100:.0f} % of its operator time ({big['ms']:.2f} ms); reaching "
            f"{goal:.2f}x needs {(1 - goal / c['ratio']) * 100:.0f} % less time in all."
        )
    return [*out, ""]


def sidebyside_md(res: dict[str, Any], sample: dict[str, Any] | None = None) -> str:
    """Section: real-size models side by side.

    Args:
        res: The side-by-side section.
        sample: The seeds section, for the chosen techniques' accuracy on the sample.
    """
    cfg = res["config"]
    threads = _threads(res)
    out = ["## 1. Real-size models side by side", ""]
    out.append(
        "What this shows: how fast each file runs batch-1 inference on this CPU — kfedge's "
        "candidates, a hand-written ONNX Runtime reference (quant_pre_process + quantize_static, "
        "QDQ, per-channel signed INT8 weights, unsigned INT8 activations, MinMax) and, when the "
        "peers ran, Olive's outputs (section 2), all made from the same model and timed in the "
        "same run. Models: "
        f"{_builders(res['models'])}, with random weights (no download: latency and size do "
        "not depend on the weights' values), calibrated on "
        f"{cfg['calibration_samples']} random images; accuracy is meaningless here and not "
        "reported (the sample in section 4 carries accuracy). Timing: "
        f"{cfg['rounds']} rounds, the order of the files changing every round, at "
        f"{', '.join(threads_word(t) for t in threads)}; before each block a {cfg['pause_s']} s "
        f"pause, then a fresh process without TensorFlow, {cfg['warmup']} warm-up runs and timed "
        f"runs for {cfg['budget_s']} s (at least 5, at most {cfg['runs']}). ORT FP32 = "
        "kfedge's `fp32-onnx` export run by ONNX Runtime: every ratio is against it, paired by "
        "round."
    )
    out.append("")
    for m in res["models"]:
        out += [
            f"### {m['label']}: {m['params']:,} parameters, {m['classes']} classes, random weights",
            "",
            model_table(m, threads),
            "",
        ]
        out += _choice_md(m, sample)
        out += _profile_md(m)
        notes = model_notes(m, threads)
        uncounted = [r["name"] for r in m["rows"] if not ir_weights_counted(r)]
        if uncounted:
            notes.append(
                "Sizes of "
                + ", ".join(f"`{n}`" for n in uncounted)
                + ": n/a; this run recorded the OpenVINO IR's .xml without its .bin weights."
            )
        if notes:
            out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


# -- Olive -----------------------------------------------------------------------------------
def _olive_rows(
    label: str, rows: list[dict[str, Any]], t: str, ratio_key: str, modes: list[str]
) -> list[list[str]]:
    by = {r["name"]: r for r in rows}
    k = by.get(KFEDGE_ONNX_INT8)
    out = []
    for mode in modes:
        name = f"olive-{mode}"
        r = by.get(name)
        if r is None:
            continue
        d = r.get("details") or r
        settings = d.get("settings")
        what = ", ".join(d.get("passes") or []) or "-"
        if settings:
            what += "; " + ", ".join(f"{k2}={v}" for k2, v in settings.items())
        tried = d.get("tried")
        tried_s = "-" if tried is None else f"{tried} ({d.get('failed') or 0} failed)"
        lat = r["latency"][t]
        out.append(
            [
                label,
                f"`{name}`",
                what,
                tried_s,
                fmt(r.get("seconds", r.get("technique_seconds")), ".1f"),
                f"{ms(lat['p50'])} {ci(*lat['p50_ci'], spec='.3g')}",
                ratio_cell(lat.get(ratio_key)),
                ratio_cell(_vs(r, k, t)) if k else "n/a",
            ]
        )
    return out


def olive_md(results: dict[str, Any]) -> str:
    """Section: Olive on the same FP32 ONNX files, timed in the same rounds."""
    info = (results.get("peers") or {}).get("olive") or {}
    cfg = info.get("config") or {}
    modes = list(cfg.get("modes") or ("static-default", "static-search", "auto-opt"))
    out = ["## 2. Microsoft Olive side by side", ""]
    out.append(
        "What this shows: what Microsoft Olive makes of the same FP32 ONNX files kfedge exported, "
        "calibrated on the same data and timed in the same interleaved rounds as kfedge's files "
        "(sections 1 and 4). Olive runs from its own virtualenv (`make bench-peers` creates "
        "`.venv-peers`; Olive needs PyTorch, which kfedge does not). Runs: `olive-static-default` "
        "= `olive run` with the `OnnxStaticQuantization` pass at its defaults; "
        "`olive-static-search` = `olive run` searching that pass's searchable settings for the "
        "lowest latency measured by Olive's own evaluator"
        + (
            f" (time budget {cfg['search_budget_s']} s, at most {cfg['search_max_iter']} "
            "configurations per model)"
            if cfg
            else ""
        )
        + "; `olive-auto-opt` = `olive auto-opt --precision int8` on CPU."
    )
    out.append("")
    if not info.get("available"):
        why = info.get("reason") or "the peers were not part of this run"
        out += [f"**Olive: not run** — {why}.", ""]
        out.append(
            md_table(["Olive run", "Result"], [[f"`olive-{m}`", f"not run: {why}"] for m in modes])
        )
        return "\n".join(out + [""])
    v = info.get("versions") or {}
    out += [
        "Versions in `.venv-peers`: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
    ]
    header = [
        "Model",
        "Olive run",
        "What Olive did (passes; settings kept)",
        "Configurations tried",
        "Wall time (s)",
        "p50 ms [95 % CI]",
        "vs ORT FP32",
        f"vs kfedge `{KFEDGE_ONNX_INT8}`",
    ]
    body: list[list[str]] = []
    notes: list[str] = []
    groups: list[tuple[str, list[dict[str, Any]], str, str, dict[str, Any] | None]] = []
    seeds = results.get("seeds")
    if seeds:
        t = str(seeds["config"]["threads"][0])
        groups.append(
            ("sample mobilenet_tiny", seeds["candidates"], t, "ratio", seeds.get("peers"))
        )
    side = results.get("sidebyside")
    if side:
        t = str(side["config"]["threads"][0])
        for m in side["models"]:
            groups.append((m["label"], m["rows"], t, "vs_ort_fp32", m.get("peers")))
    for label, rows, t, key, peer_info in groups:
        if peer_info and peer_info.get("status") != "run":
            notes.append(f"{label}: Olive not run — {peer_info.get('reason')}.")
        body += _olive_rows(f"{label} @{t}t", rows, t, key, modes)
        olive = [r for r in rows if r.get("kind") == "peer"]
        kf = [r for r in rows if r.get("kind") == "kfedge" and r["format"] == "onnx"]
        best_o, best_k = _fastest(olive, t), _fastest(kf, t)
        if best_o and best_k:
            olive_best = f"Olive's fastest file `{best_o['name']}`"
            notes.append(
                f"{label}, {threads_word(t)}: kfedge's fastest ONNX file `{best_k['name']}` is "
                f"{relation(_vs(best_k, best_o, t), olive_best)}."
            )
        for r in rows:
            if r.get("kind") == "peer" and r.get("accuracy") is not None:
                k = next((x for x in rows if x["name"] == KFEDGE_ONNX_INT8), None)
                if k:
                    notes.append(
                        f"{label}: `{r['name']}` scores {r['accuracy']:.4f} on the eval split vs "
                        f"{k['accuracy']:.4f} for kfedge's `{KFEDGE_ONNX_INT8}`."
                    )
        failed = [f for f in _failed(results, label) if f.get("kind") == "peer"]
        for f in failed:
            notes.append(f"{label}: `{f['name']}` failed — {f['error']}")
    out += [md_table(header, body), ""]
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def _failed(results: dict[str, Any], label: str) -> list[dict[str, Any]]:
    if label.startswith("sample"):
        return (results.get("seeds") or {}).get("failed", [])
    for m in (results.get("sidebyside") or {}).get("models", []):
        if m["label"] == label:
            return m.get("failed", [])
    return []


# -- compression -----------------------------------------------------------------------------
def compression_md(res: dict[str, Any]) -> str:
    """Section: file and gzip size of kfedge's compression techniques on a real-size model."""
    cfg = res["config"]
    steps = res["steps_per_epoch"] * cfg["epochs"]
    out = [f"## 3. Compression: {res['label']}, {res['params']:,} parameters", ""]
    out.append(
        "What this shows: how much smaller kfedge's techniques make the model's file, and its "
        "gzip (what a download or an over-the-air update transfers). Pruning and "
        f"clustering fine-tune the random-weight model on random data for {cfg['epochs']} "
        f"epoch(s) of {res['steps_per_epoch']} steps ({res['train_samples']} images, batch "
        f"{cfg['batch_size']}): {steps} steps, enough for the sparsity and cluster counts the "
        "techniques enforce, which is what the sizes depend on — not for accuracy, which is "
        "not reported. Ratios are against kfedge's FP32 TFLite export."
    )
    header = [
        "File",
        "Technique",
        "Size (MB)",
        "Size ratio",
        "gzip (MB)",
        "gzip ratio",
        "Sparsity",
        "Most unique weights in a layer",
        "Time (s)",
    ]
    body = [
        [
            f"`{r['name']}`",
            r["technique"],
            fmt(mb(r["size_bytes"]), ".3f"),
            ratio_str(r["size_ratio"], ".3f"),
            fmt(mb(r["size_gzip_bytes"]), ".3f"),
            ratio_str(r["gzip_ratio"], ".3f"),
            fmt(r.get("sparsity"), ".2f", "-"),
            fmt(r.get("max_unique_weights"), "d", "-"),
            fmt(r["seconds"], ".1f"),
        ]
        for r in res["rows"]
    ]
    out += ["", md_table(header, body), ""]
    notes = []
    g = res["goal"]
    if g["gzip_ratio"] is None:
        notes.append(f"Goal `{g['name']}` gzip <= {g['gzip_ratio_max']}x FP32: not measured.")
    else:
        goal = f"Goal: `{g['name']}` gzip <= {g['gzip_ratio_max']}x of FP32 on {g['model']}."
        if res["model"] == g["model"]:
            met = "meets" if g["gzip_ratio"] <= g["gzip_ratio_max"] else "misses"
            by = "" if met == "meets" else f" by {g['gzip_ratio'] - g['gzip_ratio_max']:.3f}x"
            notes.append(f"{goal} Measured: {g['gzip_ratio']:.3f}x — it {met} the goal{by}.")
        else:
            notes.append(
                f"{goal} This run compressed {res['label']} instead ({g['gzip_ratio']:.3f}x), "
                "so it does not test the goal."
            )
    by = {r["name"]: r for r in res["rows"]}
    blocks, scattered = by.get(g["name"]), by.get(g.get("scattered") or "")
    if blocks and scattered:
        rel = blocks["size_gzip_bytes"] / scattered["size_gzip_bytes"]
        sp_b, sp_s = (fmt(x.get("sparsity"), ".2f", "-") for x in (blocks, scattered))
        notes.append(
            f"Zeros in 1x4 blocks against the same sparsity scattered weight by weight: "
            f"`{blocks['name']}` gzips to {rel:.2f}x of `{scattered['name']}` "
            f"({blocks['gzip_ratio']:.3f}x against {scattered['gzip_ratio']:.3f}x of FP32), at "
            f"{sp_b} against {sp_s} sparsity."
        )
    for r in res["rows"]:
        if r["format"] != "tflite" or r["size_ratio"] is None or r["name"] == "fp32-tflite":
            continue
        if abs(r["size_ratio"] - 1) < 0.02 and r["gzip_ratio"] < 0.95:
            notes.append(
                f"`{r['name']}` keeps the FP32 file size ({r['size_ratio']:.2f}x) but gzips to "
                f"{r['gzip_ratio']:.2f}x: its zeros / shared values are stored densely, so the "
                "gain is in compressed transfer."
            )
    for f in res.get("failed", []):
        notes.append(f"`{f['name']}` could not be made: {f['error']}")
    out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)
