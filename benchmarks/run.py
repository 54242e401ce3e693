"""``make bench``: run the benchmarks, save ``benchmarks/results.json``, render ``BENCHMARKS.md``.

Usage (from the repository root)::

    python -m benchmarks.run                   # the full run (see BENCHMARKS.md for its length)
    python -m benchmarks.run --quick           # the code path only: small models, few rounds
    python -m benchmarks.run --sections seeds,serving --json /tmp/b.json --out /tmp/b.md
    python -m benchmarks.run --sections fidelity,e2e --update   # re-measure these sections only
    python -m benchmarks.render                # BENCHMARKS.md again from the saved JSON

Every figure and every sentence of ``BENCHMARKS.md`` is computed from the JSON by
:mod:`benchmarks.render`; nothing in it is written by hand. Method: files are compared side by
side in one run, in several rounds whose order changes each round, each timing block in a fresh
process without TensorFlow; warm-up runs are excluded; medians over rounds come with confidence
intervals and ratios are paired by round; the thread count is always stated.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    channels,
    compression,
    cpuclasses,
    e2e,
    fidelity,
    images,
    peers,
    realsize,
    seeds,
    serving,
    traps,
)
from benchmarks.common import ROOT, load_average, log, machine

SECTIONS = (
    "seeds",
    "sidebyside",
    "compression",
    "traps",
    "serving",
    "e2e",
    "fidelity",
    "cpuclasses",
    "images",
    "channels",
)
#: Where ``make bench`` saves the results (committed) and the Markdown rendered from them.
RESULTS = ROOT / "benchmarks" / "results.json"
MARKDOWN = ROOT / "BENCHMARKS.md"
#: Results format (the renderer refuses others).
SCHEMA = 2


# -- configuration ---------------------------------------------------------------------------
def configs(quick: bool) -> dict[str, Any]:
    """Section parameters of the full or the quick run."""
    if quick:
        return {
            "seeds": seeds.SeedsConfig(
                threads=(1,), rounds=2, epochs=1, latency_runs=300, warmup=30, time_budget_s=2.0
            ),
            "sidebyside": realsize.SideBySideConfig(
                models=("mobilenetv2-0.35-96",),
                threads=(1,),
                rounds=3,
                runs=100,
                budget_s=1.0,
                pause_s=0.3,
                per_split=16,
                calibration_samples=16,
            ),
            "compression": compression.CompressionConfig(
                model="mobilenetv2-0.35-96", per_split=16, calibration_samples=16
            ),
            "peers": peers.PeersConfig(
                search_budget_s=30, search_max_iter=6, calibration_samples=16
            ),
            "traps": traps.TrapsConfig(rounds=2, small_runs=1000, latency_runs=100),
            "serving": serving.ServingConfig(
                cases=((1, 1, 150), (8, 1, 200), (1, 32, 40)), rounds=2, warmup=10
            ),
            "fidelity": fidelity.FidelityConfig(
                model="mobilenetv2-0.35-96", images=32, repeats=2, budget_s=0.5, dense_rounds=3
            ),
            "e2e": {"repeats": 1},
            "channels": channels.ChannelsConfig(
                models=("mobilenetv2-0.35-96",),
                ratios=(0.5,),
                rounds=2,
                runs=100,
                budget_s=1.0,
                pause_s=0.3,
                per_split=16,
                calibration_samples=16,
                sample_ratios=(0.5,),
                sample_epochs=1,
                auto_search_ratios=(0.25, 0.5),
                baseline_epochs=5,
            ),
        }
    return {
        "seeds": seeds.SeedsConfig(threads=(1, 2), rounds=5, latency_runs=1000, warmup=100),
        "sidebyside": realsize.SideBySideConfig(),
        "compression": compression.CompressionConfig(),
        "peers": peers.PeersConfig(),
        "traps": traps.TrapsConfig(),
        "serving": serving.ServingConfig(),
        "fidelity": fidelity.FidelityConfig(),
        "e2e": {"repeats": 3},
        "channels": channels.ChannelsConfig(),
    }


def search_slot(real: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tuning searches' time, from the side-by-side section's ``tune-*`` files.

    Args:
        real: The side-by-side section's results (None: it did not run).

    Returns:
        ``{"status": "measured", "searches": [{"model", "technique", "seconds", "tried",
        "stopped", "chosen_params"}]}``, or ``{"status", "reason"}`` when nothing was timed.
    """
    if not real:
        return {"status": "not measured", "reason": "the side-by-side section did not run"}
    found = []
    for m in real.get("models", []):
        for r in m["rows"]:
            if r.get("search"):
                found.append(
                    {
                        "model": m["label"],
                        "technique": r["name"],
                        "seconds": r["search"]["seconds"],
                        "tried": r["search"]["tried"],
                        "stopped": r["search"]["stopped"],
                        "chosen_params": r["search"]["chosen_params"],
                    }
                )
    if not found:
        return {
            "status": "not measured",
            "reason": "no tune-* technique was among the side-by-side techniques",
        }
    return {"status": "measured", "searches": found}


def _public(obj: Any) -> Any:
    """``obj`` without the scratch entries (keys starting with ``_``), JSON-ready."""
    if isinstance(obj, dict):
        return {k: _public(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_public(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# -- the run ---------------------------------------------------------------------------------
def run(
    sections: tuple[str, ...] = SECTIONS,
    quick: bool = False,
    work_dir: Path | None = None,
    cfgs: dict[str, Any] | None = None,
    command: str = "python -m benchmarks.run",
    dataset: Path | None = None,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Run the chosen sections and return the results (JSON-ready).

    Args:
        sections: Which of :data:`SECTIONS` to run (traps and serving use the sample's models,
            compression reuses the side-by-side model when it is the same).
        quick: The short configuration (``mode`` = ``quick`` in the results).
        work_dir: Scratch directory (default: a temporary one, removed afterwards).
        cfgs: Section configurations (default: :func:`configs`).
        command: The command line recorded in the results.
        dataset: An existing sample split dataset (default: prepared).
        baseline: An existing trained sample baseline (default: trained and timed).

    Returns:
        ``{"schema", "mode", "command", "date", "seconds", "section_seconds", "machine",
        "peers", "search", <section>: {...}}``.
    """
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; expected some of {SECTIONS}")
    cfgs = cfgs or configs(quick)
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="kfedge-bench-")
        work_dir = Path(tmp)
    work_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "quick" if quick else "full",
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "sections": list(sections),
        "machine": machine(),
        "section_seconds": {},
    }
    # the channels section gets Olive even when it cannot run: it records why
    peer = None
    if any(s in sections for s in ("seeds", "sidebyside", "channels")):
        peer = peers.Olive(cfgs["peers"])
    if peer is not None and any(s in sections for s in ("seeds", "sidebyside")):
        results["peers"] = peer.info()
    olive = peer if peer is not None and peer.status["available"] else None

    def timed(name: str, fn: Any) -> Any:
        """Run one section; a section that raises is recorded and the run goes on."""
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:  # one broken section must not lose the others' hours
            log(f"section {name} failed:\n{traceback.format_exc()}")
            results.setdefault("failed_sections", {})[name] = f"{type(exc).__name__}: {exc}"
            out = None
        results["section_seconds"][name] = round(time.perf_counter() - t0, 1)
        return out

    try:
        sample: dict[str, Any] | None = None
        if any(s in sections for s in ("seeds", "traps", "serving")):
            scfg = cfgs["seeds"]
            if "seeds" not in sections:  # only the models the other sections use
                scfg = seeds.SeedsConfig(
                    techniques=("fp32-tflite", "fp32-onnx", "onnx-int8-static"),
                    threads=scfg.threads[:1],
                    rounds=1,
                    epochs=1,
                    reference=False,
                )
            hook = olive if "seeds" in sections else None
            sample = timed(
                "seeds", lambda: seeds.run(work_dir / "seeds", scfg, dataset, baseline, hook)
            )
            if "seeds" in sections:
                results["seeds"] = sample
            else:
                del results["section_seconds"]["seeds"]
        real = None
        if "sidebyside" in sections:
            real = timed(
                "sidebyside",
                lambda: realsize.run(work_dir / "sidebyside", cfgs["sidebyside"], olive),
            )
            results["sidebyside"] = real
            results["search"] = search_slot(_public(real))
        if "compression" in sections:
            ccfg = cfgs["compression"]
            reuse = next(
                (m for m in (real or {}).get("models", []) if m["model"] == ccfg.model), None
            )
            model_dir = Path(reuse["_model_dir"]) if reuse else None
            results["compression"] = timed(
                "compression",
                lambda: compression.run(work_dir / "compression", ccfg, model_dir),
            )
        cands = work_dir / "seeds" / "candidates"
        if "traps" in sections:
            pair = None
            if real and real["models"]:
                m = real["models"][0]
                files = m["_files"]
                if "fp32-onnx" in files and "onnx-int8-static" in files:
                    pair = (m["label"], files["fp32-onnx"], files["onnx-int8-static"], m["_keras"])
            results["traps"] = timed(
                "traps",
                lambda: traps.run(
                    cfgs["traps"],
                    cands / "fp32-onnx",
                    cands / "onnx-int8-static",
                    baseline or work_dir / "seeds" / "baseline.keras",
                    pair,
                ),
            )
        if "serving" in sections:
            results["serving"] = timed(
                "serving",
                lambda: serving.run(
                    cands / "fp32-tflite",
                    dataset or work_dir / "seeds" / "dataset",
                    cfgs["serving"],
                ),
            )
        if "e2e" in sections:
            reps = int(cfgs["e2e"]["repeats"])
            results["e2e"] = timed("e2e", lambda: e2e.run(work_dir / "e2e", repeats=reps))
        if "fidelity" in sections:
            results["fidelity"] = timed(
                "fidelity", lambda: fidelity.run(work_dir / "fidelity", cfgs["fidelity"])
            )
        if "cpuclasses" in sections:  # accuracy only: emulated CPUs time nothing
            results["cpuclasses"] = timed(
                "cpuclasses", lambda: cpuclasses.measure(work_dir / "cpuclasses")
            )
        if "images" in sections:  # the images `make images` built; needs the Docker engine
            results["images"] = timed("images", lambda: images.measure(work_dir / "images"))
        if "channels" in sections:
            chcfg = cfgs["channels"]
            built = {  # the side-by-side section's models, when it built the same ones
                m["model"]: Path(m["_model_dir"])
                for m in (real or {}).get("models", [])
                if m["model"] in chcfg.models
            }
            seeds_dir = work_dir / "seeds"  # the sample the seeds section prepared, if it ran
            ch_data = dataset or (seeds_dir / "dataset" if sample is not None else None)
            ch_base = baseline or (seeds_dir / "baseline.keras" if sample is not None else None)
            results["channels"] = timed(
                "channels",
                lambda: channels.measure(
                    chcfg, work_dir / "channels", built, ch_data, ch_base, peer
                ),
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for name in SECTIONS:  # a failed section is in failed_sections, not an empty entry
        if name in results and results[name] is None:
            del results[name]
    results["machine"]["load_average_at_end"] = load_average()
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    results["configs"] = {
        k: (v.to_dict() if hasattr(v, "to_dict") else dict(getattr(v, "__dict__", v)))
        for k, v in cfgs.items()
    }
    return json.loads(json.dumps(_public(results), default=str))


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` results with ``new``'s sections in place of theirs (an ``--update`` run).

    The update's provenance (sections, command, date, mode, wall time, load) is appended to
    ``updates``, so the rendered file says which sections were measured when.

    Raises:
        ValueError: ``old`` is of another schema, or from another machine (CPU or cores).
    """
    if old.get("schema") != new.get("schema"):
        raise ValueError(
            f"cannot update results of schema {old.get('schema')!r} with schema "
            f"{new.get('schema')!r}: run all sections again"
        )
    for key in ("cpu", "cpu_count", "arch"):
        if old["machine"].get(key) != new["machine"].get(key):
            raise ValueError(
                f"cannot update results from another machine ({key}: "
                f"{old['machine'].get(key)!r} there, {new['machine'].get(key)!r} here)"
            )
    out = json.loads(json.dumps(old))
    for key in ("peers", "search"):  # measured with the side-by-side section
        if "sidebyside" in new["sections"] and key in new:
            out[key] = new[key]
    failed = out.pop("failed_sections", {})
    for s in new["sections"]:
        failed.pop(s, None)
        if s in new.get("failed_sections", {}):
            failed[s] = new["failed_sections"][s]
        if s in new:
            out[s] = new[s]
        if s in new["section_seconds"]:
            out["section_seconds"][s] = new["section_seconds"][s]
        if s not in out["sections"]:
            out["sections"].append(s)
        if s in new.get("configs", {}):
            out.setdefault("configs", {})[s] = new["configs"][s]
    if failed:
        out["failed_sections"] = failed
    out.setdefault("updates", []).append(
        {
            "sections": list(new["sections"]),
            "command": new["command"],
            "date": new["date"],
            "mode": new["mode"],
            "seconds": new["seconds"],
            "load_average_at_start": new["machine"].get("load_average_at_start"),
            "load_average_at_end": new["machine"].get("load_average_at_end"),
        }
    )
    return out


def _measuring_args(argv: list[str]) -> list[str]:
    """The arguments that change what is measured (output and scratch paths dropped)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--json", "--out", "--work-dir"):
            skip = True
            continue
        if a.split("=", 1)[0] in ("--json", "--out", "--work-dir") or a == "--update":
            continue
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: run, save the JSON, render the Markdown."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="small models, few rounds (code path)")
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results (default {RESULTS})")
    ap.add_argument("--out", type=Path, default=MARKDOWN, help=f"Markdown (default {MARKDOWN})")
    ap.add_argument(
        "--sections",
        default=None,
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; --quick skips e2e)",
    )
    ap.add_argument("--rounds", type=int, default=None, help="rounds of every comparison")
    ap.add_argument("--threads", default=None, help="thread counts, e.g. 1,2")
    ap.add_argument("--peers", type=Path, default=peers.DEFAULT_VENV, help="the peers' venv")
    ap.add_argument("--no-peers", action="store_true", help="do not run Olive")
    ap.add_argument(
        "--require-peers", action="store_true", help="fail when Olive cannot run (bench-peers)"
    )
    ap.add_argument("--work-dir", type=Path, default=None, help="keep scratch files here")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="side by side: reuse the models and kfedge candidates already in --work-dir "
        "(their time to make is kept when this run made it)",
    )
    ap.add_argument(
        "--update",
        action="store_true",
        help="measure only --sections and merge them into the existing --json (the "
        "rendered file says which sections were measured when)",
    )
    args = ap.parse_args(argv)
    if args.update and not args.sections:
        ap.error("--update needs --sections (the sections to measure again)")
    if args.update and not args.json.is_file():
        ap.error(f"--update: {args.json} does not exist (run without --update first)")
    if args.sections:
        sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
        bad = [s for s in sections if s not in SECTIONS]
        if bad:
            ap.error(f"unknown section(s) {bad}; expected some of {', '.join(SECTIONS)}")
    else:
        sections = tuple(s for s in SECTIONS if not (args.quick and s == "e2e"))
    cfgs = configs(args.quick)
    if args.rounds is not None:
        if args.rounds < 1:
            ap.error(f"--rounds must be >= 1, got {args.rounds}")
        for k in ("seeds", "sidebyside", "traps", "serving", "channels"):
            cfgs[k].rounds = args.rounds
    if args.threads:
        try:
            threads = tuple(int(v) for v in args.threads.split(",") if v.strip())
        except ValueError:
            ap.error(f"--threads must be comma-separated integers, got {args.threads!r}")
        if not threads or min(threads) < 1:
            ap.error(f"--threads must be integers >= 1, got {args.threads!r}")
        cfgs["seeds"].threads = cfgs["sidebyside"].threads = threads
        cfgs["channels"].threads = threads
    cfgs["peers"].venv = None if args.no_peers else args.peers.resolve()
    cfgs["sidebyside"].reuse = args.reuse
    cfgs["peers"].require = args.require_peers
    command = "python -m benchmarks.run" + "".join(
        f" {shlex.quote(a)}" for a in _measuring_args(argv if argv is not None else sys.argv[1:])
    )
    results = run(sections, args.quick, args.work_dir, cfgs, command)
    if args.update:
        results = merge(json.loads(args.json.read_text()), results)
    from benchmarks.render import dump, render
    from kfedge.fsutil import write_text_atomic

    text = dump(results)
    write_text_atomic(args.json, text)
    # rendered from the JSON as written (sorted keys), as the committed-render test does
    write_text_atomic(args.out, render(json.loads(text)))
    log(f"wrote {args.json} and {args.out} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
