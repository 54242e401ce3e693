"""``python -m benchmarks.render``: turn ``benchmarks/results.json`` into ``BENCHMARKS.md``.

Every figure and every sentence of ``BENCHMARKS.md`` comes from here, computed from the results
(verdicts through :func:`kfedge.stats.compare_ratio`), so the text cannot contradict the
tables; a test renders the committed JSON and compares it with the committed Markdown byte for
byte. Rendering needs no TensorFlow and measures nothing::

    python -m benchmarks.render                  # rewrite BENCHMARKS.md from the results
    python -m benchmarks.render --check          # exit 1 when BENCHMARKS.md is out of date
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.render_channels import TITLE as CHANNELS_TITLE
from benchmarks.render_channels import render_channels
from benchmarks.render_cpuclasses import TITLE as CPUCLASSES_TITLE
from benchmarks.render_cpuclasses import render_cpu_classes
from benchmarks.render_fidelity import TITLE as FIDELITY_TITLE
from benchmarks.render_fidelity import fidelity_md
from benchmarks.render_images import TITLE as IMAGES_TITLE
from benchmarks.render_images import render_images
from benchmarks.render_real import compression_md, olive_md, sidebyside_md
from benchmarks.render_sample import e2e_md, seeds_md, serving_md, traps_md
from benchmarks.text import md_table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
MARKDOWN = ROOT / "BENCHMARKS.md"
SCHEMA = 2
#: Section key -> (title used when it did not run, renderer).
SECTION_TITLES = {
    "sidebyside": "1. Real-size models side by side",
    "compression": "3. Compression",
    "seeds": "4. The built-in sample",
    "traps": "6. Measuring traps",
    "serving": "7. Serving",
    "e2e": "8. `make run` end to end",
    "fidelity": FIDELITY_TITLE,
    "cpuclasses": CPUCLASSES_TITLE,
    "images": IMAGES_TITLE,
    "channels": CHANNELS_TITLE,
}
_VNNI = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def dump(results: dict[str, Any]) -> str:
    """The results as the committed JSON text (sorted keys, one space indent, final newline)."""
    return json.dumps(results, indent=1, sort_keys=True) + "\n"


def _isa_sentence(simd: list[str]) -> str:
    dot = [f for f in simd if f in _VNNI]
    if dot:
        return (
            f"This CPU has int8 dot-product instructions ({', '.join(dot)}): INT8 convolutions "
            "and matrix products can run faster than FP32 here."
        )
    if "avx2" in simd or "avx512f" in simd:
        return (
            "This CPU has no int8 dot-product instructions (no VNNI): INT8 kernels emulate them "
            "with more instructions, so INT8 gains less over FP32 here than on a CPU with VNNI."
        )
    return "No SIMD extension that INT8 kernels use was detected on this CPU."


def _load_sentence(m: dict[str, Any]) -> str | None:
    start = m.get("load_average_at_start") or []
    cores = m.get("usable_cores") or m.get("cpu_count") or 1
    if not start or start[0] is None or (isinstance(start[0], float) and math.isnan(start[0])):
        return None
    if start[0] > 0.5 * cores:
        return (
            f"The machine was busy when the run started (1-minute load {start[0]:.2f} on "
            f"{cores} usable cores): figures are noisier than on a quiet machine."
        )
    return (
        f"The machine was quiet when the run started (1-minute load {start[0]:.2f} on "
        f"{cores} usable cores)."
    )


def machine_md(m: dict[str, Any]) -> str:
    """The machine table and what its features mean for the figures."""
    pk = m.get("packages", {})
    rows = [
        ["CPU", f"{m['cpu']} ({m['arch']})"],
        ["Cores", f"{m['cpu_count']} logical, {m['usable_cores']} usable by the benchmark"],
        ["SIMD", ", ".join(m["simd"]) or "none detected"],
        ["Memory", f"{m['memory_gib']} GiB"],
        ["OS", m["system"]],
        ["Python", f"{m['python']} ({m['python_impl']})"],
        ["Libraries", ", ".join(f"{k} {v}" for k, v in pk.items())],
        ["Load average at start (1/5/15 min)", " / ".join(map(str, m["load_average_at_start"]))],
        ["Load average at end", " / ".join(map(str, m.get("load_average_at_end", [])))],
    ]
    out = ["## Machine", "", md_table(["", ""], rows), "", _isa_sentence(m["simd"])]
    load = _load_sentence(m)
    if load:
        out.append(load)
    return "\n".join(out + [""])


def header_md(results: dict[str, Any]) -> str:
    """Title, provenance, the quick-run warning, and how to read the figures."""
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in results["section_seconds"].items())
    out = ["# kfedge benchmarks", ""]
    if results["mode"] == "quick":
        out += [
            "> **Quick run (`--quick`): not representative.** Small models, few rounds and "
            "short timing blocks, to check the code path. Run `make bench` (or "
            "`make bench-peers` for Olive too) on a quiet machine for real figures.",
            "",
        ]
    out += [
        f"Generated from `benchmarks/results.json` by `python -m benchmarks.render`; the results "
        f"come from `{results['command']}` on {results['date']}, which took "
        f"{results['seconds'] / 60:.1f} min (sections: {secs or 'none'}). Nothing here is "
        "written by hand: a test renders the JSON again and requires this file to match.",
        "",
        *updates_md(results),
        "How to read the figures:",
        "",
        "- Latency is batch-1 inference with warm-up excluded, timed in a fresh process per file "
        "and round that imports the runtime and never TensorFlow, in rounds whose order changes "
        "every round. `p50` = the median over rounds of each round's median; `[a, b]` = its 95 % "
        "distribution-free confidence interval (order statistics; with too few rounds for 95 % "
        "it is the range of the rounds).",
        "- Ratios are paired by round: the geometric mean of the same-round ratios with a 95 % "
        "Student-t interval. A file is called faster or slower only when the whole interval lies "
        "on one side of 1 and the ratio differs from 1 by more than 2 %; otherwise it is a tie.",
        "- Sizes are bytes on disk and after gzip -9; 1 MB = 10^6 bytes. Thread counts are "
        "always stated.",
        "",
    ]
    return "\n".join(out)


def updates_md(results: dict[str, Any]) -> list[str]:
    """Lines for the sections measured later by ``--update`` runs (each with its provenance)."""
    out = []
    for u in results.get("updates", []):
        load = u.get("load_average_at_start") or []
        load_s = f", 1-minute load at start {load[0]:.2f}" if load else ""
        out.append(
            f"- Measured later, {u['mode']} run: {', '.join(u['sections'])} "
            f"(`{u['command']}` on {u['date']}, {u['seconds'] / 60:.1f} min{load_s}); these "
            "sections replace the first run's and the quick-run warning does not apply to them."
            if u["mode"] == "full" and results["mode"] == "quick"
            else f"- Measured later, {u['mode']} run: {', '.join(u['sections'])} "
            f"(`{u['command']}` on {u['date']}, {u['seconds'] / 60:.1f} min{load_s})."
        )
    return [*out, ""] if out else []


def search_md(results: dict[str, Any]) -> str:
    """Section: the tuning searches' time (from the side-by-side section's ``tune-*`` files)."""
    s = results.get("search") or {"status": "not measured", "reason": "not recorded"}
    out = ["## 5. Tuning search", ""]
    if s.get("status") != "measured":
        out.append(f"Search time: {s['status']} — {s['reason']}.")
        return "\n".join(out + [""])
    out.append(
        "What this shows: how long each of kfedge's bounded tuning searches took on this "
        "machine (variants applied, scored and quick-checked side by side with their FP32 "
        "model), how many variants it tried, why it stopped and what it kept. Budget: 3 "
        "minutes per search."
    )
    rows = []
    for f in s["searches"]:
        chosen = ", ".join(f"{k}={v}" for k, v in (f.get("chosen_params") or {}).items())
        over = " (over the 3-minute budget)" if (f["seconds"] or 0) > 180 else ""
        rows.append(
            [
                f["model"],
                f"`{f['technique']}`",
                f"{f['seconds']:.0f} s{over}" if f["seconds"] is not None else "-",
                f["tried"],
                f["stopped"] or "-",
                chosen or "defaults",
            ]
        )
    out += [
        "",
        md_table(["Model", "Search", "Time", "Variants tried", "Stopped", "Kept"], rows),
        "",
    ]
    return "\n".join(out)


def not_run_md(results: dict[str, Any]) -> str | None:
    """A line for every section this run skipped, and why a section that failed did."""
    failed = results.get("failed_sections", {})
    missing = [k for k in SECTION_TITLES if k not in results and k not in failed]
    broken = [k for k in SECTION_TITLES if k in failed]
    if not missing and not broken:
        return None
    mode = " (`--quick` skips `make run`)" if results["mode"] == "quick" else ""
    out = ["## Not in this run", ""]
    out += [f"- {SECTION_TITLES[k]}: failed ({failed[k]})" for k in broken]
    out += [f"- {SECTION_TITLES[k]}" for k in missing]
    if missing:
        which = "The other sections" if broken else "These sections"
        out += ["", f"{which} were not part of `{results['command']}`{mode}."]
    out.append("")
    return "\n".join(out)


def render(results: dict[str, Any]) -> str:
    """The whole BENCHMARKS.md for ``results`` (as loaded from the JSON).

    Raises:
        ValueError: Results of another schema.
    """
    if results.get("schema") != SCHEMA:
        raise ValueError(
            f"results schema {results.get('schema')!r}; this renderer reads schema {SCHEMA} "
            "(run `make bench` again)"
        )
    parts = [header_md(results), machine_md(results["machine"])]
    if "sidebyside" in results:
        parts.append(sidebyside_md(results["sidebyside"], results.get("seeds")))
    if "sidebyside" in results or "seeds" in results:
        parts.append(olive_md(results))
    if "compression" in results:
        parts.append(compression_md(results["compression"]))
    if "seeds" in results:
        parts.append(seeds_md(results["seeds"]))
    parts.append(search_md(results))
    if "traps" in results:
        parts.append(traps_md(results["traps"]))
    if "serving" in results:
        parts.append(serving_md(results["serving"]))
    if "e2e" in results:
        parts.append(e2e_md(results["e2e"]))
    if "fidelity" in results:
        parts.append(fidelity_md(results["fidelity"]))
    if "cpuclasses" in results:
        parts.append(render_cpu_classes(results["cpuclasses"]))
    if "images" in results:
        parts.append(render_images(results["images"]))
    if "channels" in results:
        parts.append(render_channels(results["channels"]))
    skipped = not_run_md(results)
    if skipped:
        parts.append(skipped)
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results (default {RESULTS})")
    ap.add_argument("--out", type=Path, default=MARKDOWN, help=f"Markdown (default {MARKDOWN})")
    ap.add_argument("--check", action="store_true", help="only check that --out is up to date")
    args = ap.parse_args(argv)
    if not args.json.is_file():
        ap.error(f"{args.json} does not exist (run `make bench` first)")
    text = render(json.loads(args.json.read_text()))
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run `python -m benchmarks.render`", file=sys.stderr)
            return 1
        return 0
    from kfedge.fsutil import write_text_atomic

    write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
