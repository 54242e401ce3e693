"""Markdown of the sample's sections: seeds, traps, serving, ``make run`` (computed from JSON)."""

from __future__ import annotations

from typing import Any

from benchmarks.common import mb
from benchmarks.render_real import MADE_BY
from benchmarks.text import (
    ci,
    fmt,
    md_table,
    ms,
    ratio_cell,
    ratio_str,
    relation,
    threads_word,
    unstable_note,
)
from benchmarks.traps import TF_SETTINGS
from kfedge import report_table

#: The report's summary header, with the PTQ accuracy column naming its int8 precision.
SEEDS_HEADER = [
    "Accuracy PTQ (int8)" if h == "Accuracy PTQ" else h for h in report_table.SEEDS_HEADER
]


def _by(rows: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["name"] == name), None)


# -- seeds -----------------------------------------------------------------------------------
def _setting_order(setting: str) -> int:
    """Position of a TF-process trap setting in the section's (1)-(4) order (unknown: last)."""
    return TF_SETTINGS.index(setting) if setting in TF_SETTINGS else len(TF_SETTINGS)


def seeds_table(seeds: list[dict[str, Any]]) -> str:
    """The seeds' table (latency: median over rounds of the batch-1 p50)."""
    rows = [
        [
            f"mobilenet_tiny 32x32 digits, {s['format']}, {threads_word(s['threads'])}",
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


def candidates_table(rows: list[dict[str, Any]], threads: list[str]) -> str:
    """Every file on the sample: accuracy with CI, latency with CI and paired ratio, sizes."""
    header = ["File", "Made by", "Format", "Accuracy [95 % CI]", "Δ acc (points)"]
    for t in threads:
        header += [f"p50 ms @{t}t [95 % CI]", f"vs FP32 @{t}t"]
    header += ["Size (MB)", "Size ratio", "gzip (MB)", "gzip ratio", "Sparsity", "Time (s)"]
    body = []
    for r in rows:
        lo, hi = r["accuracy_ci"]
        cells = [
            f"`{r['name']}`",
            MADE_BY.get(r["kind"], r["kind"]),
            r["format"],
            f"{r['accuracy']:.4f} {ci(lo, hi, '.3f')}",
            fmt(r["accuracy_delta_points"], "+.2f"),
        ]
        for t in threads:
            lat = r["latency"][t]
            cells.append(f"{ms(lat['p50'])} {ci(*lat['p50_ci'], spec='.3g')}")
            cells.append(ratio_cell(lat["ratio"], baseline=r["reference"] is None))
        cells += [
            fmt(mb(r["size_bytes"]), ".4f"),
            ratio_str(r["size_ratio"]),
            fmt(mb(r["size_gzip_bytes"]), ".4f"),
            ratio_str(r["gzip_ratio"]),
            fmt(r["sparsity"], ".2f", "-"),
            fmt(r["technique_seconds"], ".1f"),
        ]
        body.append(cells)
    return md_table(header, body)


def seeds_md(res: dict[str, Any]) -> str:
    """Section: the built-in sample (accuracy, latency, size of every file)."""
    cfg = res["config"]
    threads = [str(t) for t in cfg["threads"]]
    rows = res["candidates"]
    tr = res.get("training")
    out = ["## 4. The built-in sample: accuracy, latency and size of every file", ""]
    out.append(
        "What this shows: TensorFlow's model-optimization table (original vs PTQ vs QAT: "
        "accuracy, latency, size) redone for kfedge's own sample model on this machine, then "
        "every file — kfedge's candidates, the hand-written ORT reference and Olive's outputs "
        "made from kfedge's FP32 ONNX — with accuracy on the same eval split."
    )
    out.append("")
    if tr:
        ok = tr["eval_accuracy"] >= 0.95 and tr["wall_seconds"] <= 120
        out.append(
            f"Baseline training (`kfedge.sample.train_sample_baseline`, {tr['params']:,} "
            f"parameters): **{tr['eval_accuracy']:.4f}** eval accuracy after {tr['epochs']} "
            f"epochs in **{tr['wall_seconds']:.1f} s** wall time — it "
            + ("meets" if ok else "misses")
            + " the target of >= 95 % in <= 2 minutes."
        )
        out.append("")
    ep = "technique defaults (as `kfedge run`)" if cfg["epochs"] is None else str(cfg["epochs"])
    out.append(
        f"Method: each technique applied to the baseline (fine-tune epochs: {ep}); every file "
        "evaluated with `kfedge.evaluate.evaluate(isolate=True)` (accuracy on the eval split, "
        "with a 95 % Wilson interval; latency in a fresh subprocess without TensorFlow), "
        f"{cfg['rounds']} rounds in interleaved order, at "
        f"{', '.join(threads_word(t) for t in threads)}; each timing block: {cfg['warmup']} "
        f"warm-up runs, then up to {cfg['latency_runs']} timed batch-1 runs. Ratios are against "
        "the FP32 file of the same format (TFLite vs `fp32-tflite`, ONNX vs `fp32-onnx`, "
        "OpenVINO vs `fp32-openvino`), paired by round. Size optimized = the `ptq-int8` / "
        "`onnx-int8-static` / `openvino-int8` file."
    )
    out += ["", seeds_table(res["seeds"]), "", "Every file:", ""]
    out += [candidates_table(rows, threads), ""]
    notes = []
    t0 = threads[0]
    for r in rows:
        ratio = r["latency"][t0]["ratio"]
        if ratio is None:
            continue
        notes.append(
            f"`{r['name']}` at {threads_word(t0)} is {relation(ratio, '`' + r['reference'] + '`')}"
            f"; {r['accuracy_delta_points']:+.2f} accuracy points; file "
            f"{ratio_str(r['size_ratio'])}."
        )
    if unstable := unstable_note(rows, threads):
        notes.append(unstable)
    ref = _by(rows, "fp32-tflite")
    if ref and ref["latency"][t0]["p50"] < 0.2:
        notes.append(
            f"The model is tiny ({ref['latency'][t0]['p50'] * 1000:.0f} µs per image with "
            "`fp32-tflite`): per-call costs (Python, input checks, (de)quantizing the float input, "
            "interpreter dispatch) weigh as much as the arithmetic, so section 1 is the better "
            "guide to quantization speed on this CPU."
        )
    if len(threads) > 1 and ref:
        a, b = ref["latency"][threads[0]]["p50"], ref["latency"][threads[-1]]["p50"]
        word = "faster" if b < a else "slower"
        notes.append(
            f"Threads: `fp32-tflite` takes {ms(a)} ms at {threads_word(threads[0])} and {ms(b)} "
            f"ms at {threads_word(threads[-1])} ({ratio_str(b / a)}: {word} with more threads)."
        )
    for f in res.get("failed", []):
        notes.append(f"`{f['name']}` could not be made: {f['error']}")
    out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


# -- traps -----------------------------------------------------------------------------------
def traps_md(res: dict[str, Any]) -> str:
    """Section: ORT spinning and TensorFlow in the timing process."""
    cfg = res["config"]
    out = ["## 6. Measuring traps that `kfedge.evaluate` avoids", ""]
    out += [
        "### 6a. ONNX Runtime spinning: two sessions timed run by run in turn",
        "",
        "What this shows: whether timing two ORT sessions alternately (A, B, A, B, ...) with "
        "intra-op spinning on measures their contention rather than their speed. `block` = "
        "each model timed alone after a pause (how `evaluate` times); `alternate` = run by run "
        f"in turn. Each setting in a fresh subprocess without TensorFlow, {cfg['rounds']} "
        "rounds, median p50; the ratio is alternate / block for the same spinning setting "
        "(median over the two models).",
        "",
    ]
    header = ["Model pair", "Threads", "Setting", "FP32 p50 (ms)", "INT8 p50 (ms)", "alt / block"]
    body = []
    notes = []
    for it in res["spinning"]:
        for spin in ("on", "off"):
            for mode in ("block", "alternate"):
                c = it["cells"][f"{mode}/spin-{spin}"]
                body.append(
                    [
                        it["label"],
                        it["threads"],
                        f"{mode}, spinning {spin}",
                        ms(c["fp32"]),
                        ms(c["int8"]),
                        ratio_str(it["ratio"][f"spin-{spin}"]) if mode == "alternate" else "1.00x",
                    ]
                )
        on, off = it["ratio"]["spin-on"], it["ratio"]["spin-off"]
        b_on, b_off = it["cells"]["block/spin-on"]["fp32"], it["cells"]["block/spin-off"]["fp32"]
        if on > off * 1.02:
            what = (
                "alternating costs more with spinning on: the spinning workers of one session "
                "take CPU the next session needs"
            )
        else:
            what = (
                "the contention did not show in this run (alternating cost no more with "
                "spinning on)"
            )
        notes.append(
            f"{it['label']}: alternating costs {ratio_str(on)} with spinning on and "
            f"{ratio_str(off)} with it off — {what}. In blocks, spinning on runs the FP32 model "
            f"at {ms(b_on)} ms vs {ms(b_off)} ms off ({ratio_str(b_on / b_off)})."
        )
    out += [md_table(header, body), "", "Notes:", ""] + [f"- {n}" for n in notes] + [""]
    out += [
        "### 6b. ONNX Runtime timed in a process where TensorFlow is loaded (and busy)",
        "",
        "What this shows: the latency of the same FP32 ONNX model timed (1) alone in a "
        "subprocess, (2) in the benchmark process, where TensorFlow is loaded but idle, (3) in "
        "that process while a background thread runs Keras forward passes, and (4) in a "
        "subprocess while the benchmark process keeps TensorFlow busy — (3) vs (4) separates "
        "in-process interference (the GIL, shared thread pools) from plain CPU contention. "
        f"Spinning off, {threads_word(cfg['trap_threads'])}, {cfg['rounds']} rounds, median p50.",
        "",
    ]
    header = ["Model (FP32 ONNX)", "Threads", "Where ORT is timed", "p50 (ms)", "vs alone"]
    body = [
        [it["label"], it["threads"], s, ms(v), ratio_str(it["ratio"][s])]
        for it in res["tf_process"]
        for s, v in sorted(it["cells"].items(), key=lambda kv: _setting_order(kv[0]))
    ]
    notes = []
    for it in res["tf_process"]:
        r = it["ratio"]
        same, other = r["in-process, TF busy"], r["subprocess, TF busy here"]
        if same > 1.05 and same > other * 1.05:
            why = (
                "TensorFlow working in the same process costs more than TensorFlow working in "
                "another one, so the difference is in-process interference, not CPU count — "
                "hence `evaluate(isolate=True)` times every candidate in a fresh subprocess"
            )
        elif same > 1.05:
            why = (
                "TensorFlow working slowed ONNX Runtime about as much from another process as "
                "from the same one: CPU contention, no in-process interference beyond it"
            )
        else:
            why = "TensorFlow in the timing process did not slow ONNX Runtime down in this run"
        notes.append(
            f"{it['label']}: TensorFlow busy in the same process {ratio_str(same)} vs alone, "
            f"busy in another process {ratio_str(other)}, loaded but idle "
            f"{ratio_str(r['in-process, TF loaded idle'])}: {why}."
        )
    out += [md_table(header, body), "", "Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


# -- serving ---------------------------------------------------------------------------------
def serving_md(res: dict[str, Any]) -> str:
    """Section: the model server over V2 JSON, V2 binary and V1 vs in-process."""
    out = ["## 7. Serving: the kfedge model server over V2 JSON, V2 binary and V1", ""]
    out.append(
        "What this shows: what the HTTP server adds to an inference of the sample FP32 TFLite "
        "model, per protocol. Server: `python -m kfedge.serving` on 127.0.0.1, "
        f"{threads_word(res['threads'])} of inference, ready {res['server_start_seconds']:.1f} s "
        "after start. Clients: threads of the benchmark process, one keep-alive connection each, "
        "bodies encoded beforehand (answers decoded and timed); `in-process` = the same runner "
        f"called directly by the same number of threads. {res['rounds']} rounds per case, "
        "protocols interleaved, warm-up excluded; medians over rounds; ratios vs in-process in "
        "the same round. Client and server share the machine's cores."
    )
    header = [
        "Clients",
        "Batch",
        "Path",
        "Request bytes",
        "p50 / p90 / p99 (ms)",
        "Throughput (req/s)",
        "p50 vs in-process",
        "Throughput vs in-process",
    ]
    rows = res["rows"]
    body = [
        [
            r["clients"],
            r["batch"],
            r["protocol"],
            fmt(r["request_bytes"], "d", "-"),
            f"{r['p50']:.3f} / {r['p90']:.3f} / {r['p99']:.3f}",
            fmt(r["throughput_rps"], ".0f"),
            ratio_str(r["latency_ratio"], ".1f"),
            ratio_str(r["throughput_ratio"], ".3f"),
        ]
        for r in rows
    ]
    out += ["", md_table(header, body), ""]

    def row(c: int, b: int, p: str) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["clients"] == c and r["batch"] == b and r["protocol"] == p), None
        )

    notes = []
    for c, b in sorted({(r["clients"], r["batch"]) for r in rows}):
        j, bi, v1, ip = (row(c, b, p) for p in ("v2-json", "v2-binary", "v1", "in-process"))
        if j and bi and v1 and ip:
            fastest = min((j, bi, v1), key=lambda r: r["p50"])
            notes.append(
                f"{c} client(s), batch {b}: p50 V2 binary {bi['p50']:.2f} ms, V2 JSON "
                f"{j['p50']:.2f} ms, V1 {v1['p50']:.2f} ms (in-process {ip['p50']:.3f} ms); the "
                f"lowest is {fastest['protocol']}, which adds {fastest['p50'] - ip['p50']:.2f} ms "
                "per request to the inference itself."
            )
    for r in rows:
        if r["protocol"] != "in-process" and r["p90"] > 3 * r["p50"]:
            notes.append(
                f"{r['protocol']} with {r['clients']} client(s), batch {r['batch']}: p90 "
                f"{r['p90']:.1f} ms vs p50 {r['p50']:.1f} ms — a long tail (some requests "
                "stall), not steady cost."
            )
    out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


# -- make run --------------------------------------------------------------------------------
def e2e_md(res: dict[str, Any]) -> str:
    """Section: ``kfedge run`` with defaults, its wall time and the repeated runs' selections."""
    runs = res["runs"] if "runs" in res else [res]  # results of one run (before 0.3) too
    budget_s, goal_s = res["budget_s"], res["goal_s"]
    budget_min, goal_min = budget_s / 60, goal_s / 60
    out = ["## 8. `make run` end to end", ""]
    out.append(
        "What this shows: `kfedge run` with defaults (what `make run` runs: sample data, "
        "baseline training, the default CPU plan, evaluation of every candidate, the "
        "side-by-side benchmark step, report, selection, local deployment and smoke test "
        f"through kfp.local), run {len(runs)} time(s) one after the other on this machine: "
        "its wall time, and whether the runs deploy the same candidate."
    )
    rows = []
    for i, r in enumerate(runs, 1):
        tied = [t for t in r.get("tied", []) if t != r.get("selected")]
        rows.append(
            [
                i,
                f"`{r['command']}`",
                f"{r['seconds']:.0f} s ({r['seconds'] / 60:.1f} min)",
                r["returncode"],
                r["selected"] or "-",
                ", ".join(tied) or "-",
            ]
        )
    out += [
        "",
        md_table(
            ["Run", "Command", "Wall time", "Exit", "Selected", "Tied with it in its report"],
            rows,
        ),
        "",
    ]
    over = [i for i, r in enumerate(runs, 1) if not r["ok"] or r["seconds"] > budget_s]
    slowest = max((r["seconds"] for r in runs), default=0.0)
    if over:
        out.append(
            f"Result: run(s) {', '.join(map(str, over))} failed or went over the "
            f"{budget_min:.0f}-minute budget."
        )
    else:
        goal = "meets" if slowest <= goal_s else "misses"
        out.append(
            f"Result: every run is within the {budget_min:.0f}-minute budget; the slowest "
            f"({slowest / 60:.1f} min) {goal} the {goal_min:.0f}-minute goal."
        )
    cons = res.get("consistency")
    if cons and len(runs) > 1:
        if cons["same"]:
            first = cons["selected"][0]
            out.append(f"All {len(runs)} runs deployed the same candidate, `{first}`.")
        elif cons["agree"]:
            out.append(
                "The runs deployed different candidates ("
                + ", ".join(f"`{s}`" for s in cons["selected"])
                + "), and every run's report calls the others' choices tied with its own: "
                "the difference is inside the measured noise."
            )
        else:
            pairs = "; ".join(f"runs {a} and {b}" for a, b in cons["disagreeing"])
            out.append(
                "The runs do NOT agree: "
                + pairs
                + " deployed different candidates that their reports do not call tied."
            )
    out.append("")
    for i, r in enumerate(runs, 1):
        if not r["ok"]:
            out += [f"Last lines of run {i}'s output:", "", "```", *r["tail"], "```", ""]
    return "\n".join(out)
