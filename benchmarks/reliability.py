"""``make soak``: the reliability figures -> ``benchmarks/reliability.json`` -> ``RELIABILITY.md``.

Usage (from the repository root)::

    python -m benchmarks.reliability                       # the real run (about 45 minutes)
    SOAK_SECONDS=20 python -m benchmarks.reliability        # short mode: every section, small
    python -m benchmarks.reliability --sections soak,fuzz --json /tmp/r.json --out /tmp/r.md
    python -m benchmarks.reliability_render                 # RELIABILITY.md again from the JSON

Sections: ``soak`` and ``throughput`` (:mod:`benchmarks.soak`), ``fuzz``
(:mod:`benchmarks.reliability_fuzz`), ``s3`` and ``credentials``
(:mod:`benchmarks.reliability_s3`). The models are made first in a child process (TensorFlow
stays out of the measuring process): the built-in sample (FP32 TFLite) and, in the real run,
MobileNetV2 1.0 224 with random weights quantized to full INT8 TFLite.

The real run: ``SOAK_SECONDS`` = 600 (10 minutes at concurrency 32), 100,000 in-process fuzzed
requests and schemathesis. A run with ``SOAK_SECONDS`` below 600 is a *short* run: smaller
counts everywhere, marked as such in the JSON and in RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, load_average, log, machine, run_json_child

SECTIONS = ("soak", "throughput", "fuzz", "s3", "credentials")
RESULTS = ROOT / "benchmarks" / "reliability.json"
MARKDOWN = ROOT / "RELIABILITY.md"
SCHEMA = 1
#: The real run's soak length; shorter runs are marked short.
FULL_SECONDS = 600.0
#: Models made for the throughput comparison: key -> what is made.
MODELS = {
    "sample": "the built-in sample (32x32x1 digits), FP32 TFLite",
    "mobilenetv2-224-int8": "MobileNetV2 1.0 224x224 (random weights), full-INT8 TFLite",
}


def configs(seconds: float) -> dict[str, Any]:
    """Every section's parameters for a soak of ``seconds`` (short below 600 s)."""
    from benchmarks.soak import SoakConfig, ThroughputConfig

    short = seconds < FULL_SECONDS
    return {
        "short": short,
        "soak": SoakConfig(seconds=seconds, concurrency=32),
        "throughput": ThroughputConfig(seconds=1.0, min_requests=50, max_requests=300, rounds=1)
        if short
        else ThroughputConfig(),
        "models": ["sample"] if short else list(MODELS),
        "fuzz_examples": 2000 if short else 34_000,  # per target (v1, v2, binary)
        "schemathesis_examples": 5 if short else 200,
        "s3_mib": 12 if short else 64,
    }


def prepare(work: Path, keys: list[str]) -> dict[str, str]:
    """Make the models (TensorFlow runs here; called in a child process).

    Returns:
        Model key -> path of the .tflite file.
    """
    from kfedge.candidate import model_path

    made: dict[str, str] = {}
    if "sample" in keys:
        out = work / "sample.tflite"
        if not out.is_file():
            from kfedge.convert import convert_tflite
            from kfedge.data import prepare_dataset
            from kfedge.sample import train_sample_baseline

            data = work / "sample-data"
            prepare_dataset("sample://digits", data, [32, 32, 1], 10)
            train_sample_baseline(data, work / "sample.keras")
            convert_tflite(work / "sample.keras", out)
        made["sample"] = str(out)
    if "mobilenetv2-224-int8" in keys:
        dest = work / "mobilenetv2-224-int8"
        if not (dest / "candidate.json").is_file():
            from benchmarks import models
            from kfedge import techniques

            prep = models.prepare(models.spec("mobilenetv2-224"), work / "mnv2", per_split=16)
            params = {"calibration_samples": 16}
            techniques.apply("ptq-int8", prep["keras"], prep["dataset"], params, dest)
        made["mobilenetv2-224-int8"] = str(model_path(dest))
    return made


def run(sections: list[str], seconds: float, work: Path) -> dict[str, Any]:
    """Run ``sections`` and return the results (the JSON ``make soak`` saves)."""
    from benchmarks import reliability_fuzz, reliability_s3, soak

    cfg = configs(seconds)
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "short": cfg["short"],
        "command": "make soak" + ("" if not cfg["short"] else f" SOAK_SECONDS={seconds:g}"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "load_before": load_average(),
        "sections": {},
    }
    need = ("soak", "throughput", "fuzz")
    paths: dict[str, str] = {}
    if any(s in sections for s in need):
        keys = cfg["models"] if "throughput" in sections else ["sample"]
        log(f"making the models ({', '.join(keys)}) in a child process")
        paths = run_json_child(
            "benchmarks.reliability", ["--prepare", str(work), "--models", ",".join(keys)], 3600
        )
    sample = Path(paths["sample"]) if paths else None
    out = results["sections"]
    if "soak" in sections and sample is not None:
        out["soak"] = soak.soak(sample, work, cfg["soak"])
    if "throughput" in sections:
        out["throughput"] = {
            "models": {k: MODELS[k] for k in paths},
            "results": [
                soak.throughput(Path(p), k, work, cfg["throughput"]) for k, p in paths.items()
            ],
        }
    if "fuzz" in sections and sample is not None:
        out["fuzz"] = {
            "in_process": reliability_fuzz.fuzz_in_process(sample, cfg["fuzz_examples"]),
            "schemathesis": reliability_fuzz.fuzz_schemathesis(
                sample, work, cfg["schemathesis_examples"]
            ),
        }
    if "s3" in sections:
        out["s3"] = reliability_s3.s3_faults(work / "s3", cfg["s3_mib"])
    if "credentials" in sections:
        out["credentials"] = reliability_s3.credentials(work / "creds", sample)
    results["load_after"] = load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=MARKDOWN)
    parser.add_argument("--workdir", type=Path, default=None, help="keep models here (reused)")
    parser.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--models", default="sample", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare is not None:
        args.prepare.mkdir(parents=True, exist_ok=True)
        made = prepare(args.prepare, args.models.split(","))
        args.json.write_text(json.dumps(made))
        return 0
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        print(f"error: unknown sections {unknown}; expected some of {SECTIONS}", file=sys.stderr)
        return 2
    seconds = float(os.environ.get("SOAK_SECONDS", FULL_SECONDS))
    from benchmarks.reliability_render import dump, render

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = run(sections, seconds, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="kfedge-soak-") as tmp:
            results = run(sections, seconds, Path(tmp))
    text = dump(results)
    args.json.write_text(text)
    args.out.write_text(render(json.loads(text)))  # exactly what the committed JSON renders to
    log(f"wrote {args.json} and {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
