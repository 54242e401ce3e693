"""Peers side by side: Microsoft Olive optimizes the same FP32 ONNX files kfedge exported.

Olive (PyPI ``olive-ai``) needs PyTorch, so it lives in its own virtualenv (``.venv-peers``,
made by ``make bench-peers``), never among kfedge's dependencies. This module runs Olive's
command line from that virtualenv in a subprocess; the ONNX files Olive writes are then timed
by :mod:`benchmarks.realsize` in the same interleaved rounds as kfedge's candidates (with
kfedge's ONNX Runtime, in fresh processes), and scored on the sample like every candidate.

Three Olive runs per model, all on kfedge's ``fp32-onnx`` file and calibrated on the same
calibration split:

* ``olive-static-default``: ``olive run`` with the ``OnnxStaticQuantization`` pass and its
  default settings.
* ``olive-static-search``: ``olive run`` searching ``OnnxStaticQuantization``'s searchable
  settings (per-channel, calibration method, QDQ / QOperator, signedness, reduced range,
  pre-processing) for the lowest latency measured by Olive's own evaluator, within a time
  budget; the best model is kept.
* ``olive-auto-opt``: ``olive auto-opt --precision int8`` (Olive's one-command path on CPU).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, log

#: The peers' virtualenv ``make bench-peers`` creates.
DEFAULT_VENV = ROOT / ".venv-peers"
#: Olive runs, in order.
MODES = ("static-default", "static-search", "auto-opt")
#: Settings the search varies (OnnxStaticQuantization's searchable parameters).
SEARCHED = (
    "per_channel",
    "calibrate_method",
    "quant_format",
    "precision",
    "activation_type",
    "reduce_range",
    "quant_preprocess",
)
_VERSIONS = "olive-ai", "onnxruntime", "onnx", "torch"
#: Name of the calibration data config. Olive reads a name that is also a path in its working
#: directory as that path, so it must not match a folder there.
DATA_CONFIG = "kfedge_calibration_split"
#: A pass Olive ran, as its log names it ("Running pass quantization:onnxstaticquantization").
_PASS_RE = re.compile(r"Running pass [^:\s]+:(\w+)")


@dataclass
class PeersConfig:
    """Parameters of the peers' runs.

    Attributes:
        venv: The peers' virtualenv (None: peers off).
        require: Fail the benchmark when the virtualenv is missing or broken.
        modes: Which of :data:`MODES` to run.
        search_budget_s: Olive's search time budget per model (``max_time``).
        search_max_iter: Most configurations Olive's search tries per model.
        calibration_samples: Calibration samples handed to Olive.
        timeout_s: Hard limit of one Olive command.
    """

    venv: Path | None = DEFAULT_VENV
    require: bool = False
    modes: tuple[str, ...] = MODES
    search_budget_s: int = 180
    search_max_iter: int = 24
    calibration_samples: int = 32
    timeout_s: float = 1800

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (the virtualenv relative to the repository)."""
        d = dict(self.__dict__)
        d["modes"] = list(self.modes)
        d["venv"] = None if self.venv is None else _rel(self.venv)
        return d


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _bin(venv: Path, name: str) -> Path:
    return Path(venv) / "bin" / name


def olive_status(venv: Path | None) -> dict[str, Any]:
    """Whether Olive can run: ``{"available", "reason", "versions"}``."""
    if venv is None:
        return {
            "available": False,
            "reason": "peers were switched off (--no-peers)",
            "versions": {},
        }
    py = _bin(venv, "python")
    if not py.is_file():
        return {
            "available": False,
            "reason": f"the peers' virtualenv {_rel(venv)} does not exist (`make bench-peers` "
            "creates it)",
            "versions": {},
        }
    code = (
        "import json, importlib.metadata as m\n"
        "import olive, onnxruntime, torch\n"
        f"print(json.dumps({{n: m.version(n) for n in {list(_VERSIONS)!r}}}))"
    )
    try:
        proc = subprocess.run(
            [str(py), "-c", code], capture_output=True, text=True, timeout=300, env=_env()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": False, "reason": f"{_rel(venv)}: {exc}", "versions": {}}
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        return {
            "available": False,
            "reason": f"{_rel(venv)} cannot import Olive: {last[0][:200]}",
            "versions": {},
        }
    return {"available": True, "reason": "", "versions": json.loads(proc.stdout.strip())}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["OLIVE_DISABLE_TELEMETRY"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _input_name(onnx_path: Path) -> str:
    from kfedge import compat

    model = compat.onnx().load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def write_raw_data(dataset: Path, out: Path, input_name: str, samples: int) -> dict[str, Any]:
    """The calibration split as Olive's ``RawDataContainer`` wants it (one raw file a sample).

    Returns:
        The ``load_dataset_config`` parameters.
    """
    from kfedge.data import load_split

    x, y = load_split(dataset, "calibration", samples)
    d = out / input_name
    d.mkdir(parents=True, exist_ok=True)
    for i, xi in enumerate(np.asarray(x, dtype=np.float32)):
        xi[None].tofile(d / f"{i:05d}.raw")
    np.save(out / "labels.npy", np.asarray(y, dtype=np.int64))
    return {
        "data_dir": str(out),
        "input_names": [input_name],
        "input_shapes": [[1, *map(int, x.shape[1:])]],
        "input_types": ["float32"],
        "annotations_file": "labels.npy",
    }


def olive_config(
    mode: str, fp32_onnx: Path, data_params: dict[str, Any], out: Path, cfg: PeersConfig
) -> dict[str, Any]:
    """The ``olive run`` workflow of ``static-default`` or ``static-search``."""
    quant: dict[str, Any] = {"type": "OnnxStaticQuantization", "data_config": DATA_CONFIG}
    config: dict[str, Any] = {
        "input_model": {"type": "ONNXModel", "model_path": str(fp32_onnx)},
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [
                    {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}
                ],
            }
        },
        "data_configs": [
            {
                "name": DATA_CONFIG,
                "type": "RawDataContainer",
                "load_dataset_config": {"params": data_params},
            }
        ],
        "passes": {"quantization": quant},
        "host": "local_system",
        "target": "local_system",
        "output_dir": str(out / "output"),
        "cache_dir": str(out / "cache"),
        "log_severity_level": 1,
        "evaluate_input_model": False,
    }
    if mode == "static-search":
        quant.update({k: "SEARCHABLE_VALUES" for k in SEARCHED})
        config["evaluators"] = {
            "latency": {
                # an explicit type: with none, olive 0.13.0 fails while scanning the evaluator
                # for resource paths (AttributeError: 'NoneType' object has no attribute 'lower')
                "type": "OnnxEvaluator",
                "metrics": [
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": DATA_CONFIG,
                        "sub_types": [{"name": "p50", "priority": 1}],
                    }
                ],
            }
        }
        config["evaluator"] = "latency"
        config["search_strategy"] = {
            "execution_order": "joint",
            "sampler": "tpe",
            "max_time": int(cfg.search_budget_s),
            "max_iter": int(cfg.search_max_iter),
        }
    return config


def _run(cmd: list[str], log_path: Path, timeout: float) -> tuple[int | None, float, list[str]]:
    """Run an Olive command in its own directory (Olive writes ``.olive-cache`` into the cwd)."""
    t0 = time.perf_counter()
    with log_path.open("w") as fh:
        try:
            rc: int | None = subprocess.run(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env=_env(),
                cwd=log_path.parent,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = None
    seconds = time.perf_counter() - t0
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    return rc, seconds, lines[-6:]


def _newest_onnx(out: Path, exclude: Path) -> Path | None:
    files = [
        f
        for f in out.rglob("*.onnx")
        if "cache" not in f.relative_to(out).parts and f.resolve() != exclude.resolve()
    ]
    return max(files, key=lambda f: f.stat().st_mtime) if files else None


def footprint(out: Path) -> dict[str, Any]:
    """What Olive's ``footprint.json`` says: configurations tried, failed, and the one kept.

    The kept configuration is the output model's: the tried model with the lowest latency
    Olive measured (its search objective), or the only one without a search.

    Returns:
        ``{"tried", "failed", "settings", "olive_p50_ms"}`` (None values when there is no
        footprint).
    """
    empty = {"tried": None, "failed": None, "settings": None, "olive_p50_ms": None}
    f = out / "footprint.json"
    if not f.is_file():
        return empty
    try:
        nodes = [n for n in json.loads(f.read_text()).values() if n.get("from_pass")]
    except (OSError, ValueError, AttributeError):
        return empty
    failed = [n for n in nodes if (n.get("model_config_data") or {}).get("is_pruned")]
    ok = [n for n in nodes if n not in failed]

    def p50(n: dict[str, Any]) -> float:
        m = n.get("metrics") or {}
        v = (m.get("value") or m).get("latency-p50") if isinstance(m, dict) else None
        v = v.get("value") if isinstance(v, dict) else v
        return float(v) if isinstance(v, (int, float)) else float("inf")

    best = min(ok, key=p50) if ok else None
    settings = None
    if best is not None:
        run = best.get("pass_run_config") or {}
        settings = {k: run.get(k) for k in SEARCHED if k in run}
    best_p50 = p50(best) if best is not None else float("inf")
    return {
        "tried": len(nodes),
        "failed": len(failed),
        "settings": settings,
        "olive_p50_ms": None if best_p50 == float("inf") else best_p50,
    }


def run_olive(
    mode: str, fp32_onnx: Path, dataset: Path, work: Path, cfg: PeersConfig
) -> dict[str, Any]:
    """One Olive run on ``fp32_onnx``.

    Returns:
        An entry for :func:`benchmarks.realsize.time_side_by_side` (``name``, ``kind="peer"``,
        ``path``, ``seconds``, sizes, ``command``, ``settings``) or a failure
        (``status="failed"``, ``error``).
    """
    from benchmarks.realsize import entry, failure

    assert cfg.venv is not None
    name = f"olive-{mode}"
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    if mode == "auto-opt":
        cmd = [str(_bin(cfg.venv, "olive")), "auto-opt", "-m", str(fp32_onnx)]
        cmd += ["--device", "cpu", "--provider", "CPUExecutionProvider", "--precision", "int8"]
        cmd += ["-o", str(out / "output"), "--log_level", "1"]
        shown = "olive auto-opt -m fp32.onnx --device cpu --provider CPUExecutionProvider "
        shown += "--precision int8"
    elif mode in ("static-default", "static-search"):
        data = write_raw_data(
            dataset, out / "raw-calibration", _input_name(fp32_onnx), cfg.calibration_samples
        )
        conf = olive_config(mode, fp32_onnx, data, out, cfg)
        (out / "olive.json").write_text(json.dumps(conf, indent=1))
        cmd = [str(_bin(cfg.venv, "olive")), "run", "--config", str(out / "olive.json")]
        shown = "olive run --config olive.json (OnnxStaticQuantization"
        shown += ", searchable settings, latency objective)" if mode == "static-search" else ")"
    else:
        raise ValueError(f"unknown Olive mode {mode!r}; expected one of {MODES}")
    log(f"Olive {mode} on {fp32_onnx.parent.name}/{fp32_onnx.name}")
    try:
        rc, seconds, tail = _run(cmd, out / "olive.log", cfg.timeout_s)
    except OSError as exc:  # one peer that cannot start must not end the benchmark
        return failure(name, "peer", f"could not start Olive: {exc}")
    model = _newest_onnx(out / "output", fp32_onnx) if (out / "output").is_dir() else None
    if rc != 0 or model is None:
        why = "timed out" if rc is None else f"exit {rc}" if rc != 0 else "no ONNX output"
        return failure(name, "peer", f"{why}: {tail[-1] if tail else 'no output'}")
    passes = list(dict.fromkeys(_PASS_RE.findall((out / "olive.log").read_text(errors="replace"))))
    return entry(
        name,
        "peer",
        "onnx",
        model,
        round(seconds, 1),
        command=shown,
        passes=passes,
        **footprint(out / "output"),
        budget_s=cfg.search_budget_s if mode == "static-search" else None,
    )


class Olive:
    """The peers hook of :func:`benchmarks.realsize.run_model` (a callable)."""

    def __init__(self, cfg: PeersConfig) -> None:
        if cfg.venv is not None:  # Olive runs in its own directory: a relative path would break
            cfg.venv = Path(cfg.venv).resolve()
        self.cfg = cfg
        self.status = olive_status(cfg.venv)
        if cfg.require and not self.status["available"]:
            raise RuntimeError(f"Olive is required but cannot run: {self.status['reason']}")

    def info(self) -> dict[str, Any]:
        """What the results record about the peers."""
        return {"olive": {**self.status, "config": self.cfg.to_dict()}}

    def __call__(
        self, label: str, fp32_onnx: Path, dataset: Path, work: Path
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run every mode on ``fp32_onnx``; entries to time, and what happened."""
        if not self.status["available"]:
            return [], {"status": "not run", "reason": self.status["reason"]}
        entries = [run_olive(m, fp32_onnx, dataset, work, self.cfg) for m in self.cfg.modes]
        return entries, {"status": "run", "modes": list(self.cfg.modes)}
