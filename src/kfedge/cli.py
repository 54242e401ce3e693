"""The ``kfedge`` command line.

Every :class:`~kfedge.errors.KfedgeError` becomes one clear line on stderr and exit code 2;
heavy frameworks and kfp are imported only by the sub-command that needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kfedge._version import __version__
from kfedge.errors import ConfigError, KfedgeError

DEFAULT_OUTPUT = "local_outputs"


def _add_goal_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("goals (a candidate must meet all that are given)")
    g.add_argument(
        "--max-accuracy-drop",
        type=float,
        metavar="PTS",
        help="largest accuracy drop against the baseline, in points (default 1.5)",
    )
    g.add_argument("--max-latency-ms", type=float, metavar="MS", help="largest p50 latency")
    g.add_argument(
        "--min-speedup",
        type=float,
        metavar="FRAC",
        help="smallest p50 latency improvement over the baseline, e.g. 0.2 = 20%%",
    )
    g.add_argument("--max-size-mb", type=float, metavar="MB", help="largest model file")
    g.add_argument(
        "--objective",
        choices=["latency", "size", "accuracy"],
        default="latency",
        help="how to rank the candidates that pass (default: latency)",
    )


def goals_from_args(args: argparse.Namespace) -> dict:
    """The goals dict (kfedge.select.Goals fields) from the CLI flags."""
    drop = 1.5 if args.max_accuracy_drop is None else args.max_accuracy_drop
    if drop < 0:
        raise ConfigError(f"--max-accuracy-drop must be >= 0 points, got {drop}")
    goals: dict = {"max_accuracy_drop": drop / 100.0, "objective": args.objective}
    if args.max_latency_ms is not None:
        goals["max_latency_ms"] = args.max_latency_ms
    if args.min_speedup is not None:
        goals["min_latency_improvement"] = args.min_speedup
    if args.max_size_mb is not None:
        goals["max_size_bytes"] = int(args.max_size_mb * 1024 * 1024)
    return goals


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kfedge",
        description="Take a trained model to an edge device on Kubeflow: provision, optimize, "
        "evaluate, report, select and deploy to KServe.",
    )
    p.add_argument("--version", action="version", version=f"kfedge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="run the pipeline on this machine (kfp.local); no arguments = the built-in sample",
        description="Run edge-optimize-deploy through kfp.local on this machine. With no "
        "arguments it trains the built-in sample baseline on the handwritten digits that ship "
        "with scikit-learn, optimizes it, evaluates every candidate, writes the report, selects "
        "one and smoke-tests it on a local KServe endpoint.",
    )
    r.add_argument(
        "--model",
        default="sample://baseline",
        help="model URI: sample://baseline, a path, file:// or s3:// (.keras, .h5, "
        "SavedModel, .tflite, .onnx)",
    )
    r.add_argument(
        "--data",
        default="sample://digits",
        help="data URI: sample://digits, an .npz (x, y), an image-folder tree, or s3://",
    )
    r.add_argument(
        "--target",
        default="cpu-amd64",
        help="target profile name or YAML file (see `kfedge targets`)",
    )
    r.add_argument(
        "--techniques",
        default="auto",
        help="comma-separated techniques, or 'auto' for the target's default plan",
    )
    r.add_argument(
        "--epochs",
        type=int,
        default=0,
        help="fine-tune epochs for QAT / pruning / clustering (0 = technique default)",
    )
    r.add_argument(
        "--calibration-samples", type=int, default=0, help="INT8 calibration samples (0 = default)"
    )
    r.add_argument("--latency-runs", type=int, default=200, help="timed runs per candidate")
    r.add_argument("--output-dir", default=DEFAULT_OUTPUT, help="where runs and reports go")
    r.add_argument("--no-deploy", action="store_true", help="stop after the report (edge-optimize)")
    r.add_argument(
        "--serve",
        action="store_true",
        help="after the run, keep serving the selected model in the foreground",
    )
    r.add_argument("--port", type=int, default=8080, help="port for --serve")
    _add_goal_args(r)

    c = sub.add_parser("compile", help="regenerate the checked-in component and pipeline YAML")
    c.add_argument(
        "--check",
        action="store_true",
        help="only check that the checked-in YAML is current (exit 1 when stale)",
    )
    c.add_argument("--output-dir", help="write there instead of next to the sources")

    s = sub.add_parser("submit", help="upload a pipeline to Kubeflow Pipelines and start a run")
    s.add_argument("--host", help="KFP API endpoint (default: KF_PIPELINES_ENDPOINT or in-cluster)")
    s.add_argument("--namespace", help="Kubeflow profile namespace")
    s.add_argument(
        "--pipeline",
        default="edge-optimize-deploy",
        help="edge-optimize-deploy | edge-optimize | edge-evaluate, or a YAML file",
    )
    s.add_argument("--experiment", default="kfedge", help="experiment name")
    s.add_argument("--run-name", help="run name (default: pipeline name + time)")
    s.add_argument("--version-name", help="upload as a new version of the pipeline with this name")
    s.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline parameter (JSON values allowed), repeatable",
    )
    s.add_argument("--no-wait", action="store_true", help="do not wait for the run to finish")

    v = sub.add_parser(
        "serve", help="serve a .tflite / .onnx model (KServe V1 + V2) in the foreground"
    )
    v.add_argument("model", help="model file, candidate directory, or s3:// URI")
    v.add_argument("--name", default="model", help="model name in the URL paths")
    v.add_argument("--port", type=int, default=8080)
    v.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")

    t = sub.add_parser("targets", help="list the edge target profiles, or show one")
    t.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    t.add_argument("name", nargs="?", help="target name (for show)")

    tq = sub.add_parser("techniques", help="list the optimization techniques and their parameters")
    tq.add_argument("name", nargs="?", help="show one technique's parameters (JSON schema)")

    rep = sub.add_parser("report", help="print the last report (or open its HTML page)")
    rep.add_argument(
        "path", nargs="?", help="report.json or a run directory (default: the last run)"
    )
    rep.add_argument("--output-dir", default=DEFAULT_OUTPUT)
    rep.add_argument(
        "--open",
        action="store_true",
        help="print the HTML report's file:// URL and open it in a browser when one is available",
    )
    rep.add_argument("--json", action="store_true", help="print the JSON report")

    e = sub.add_parser("evaluate", help="evaluate one model on a dataset (accuracy, latency, size)")
    e.add_argument("model")
    e.add_argument("data", help="split dataset directory or .npz")
    e.add_argument("--json", help="write the evaluation JSON here")
    e.add_argument("--latency-runs", type=int, default=200)
    return p


def _cmd_targets(args: argparse.Namespace) -> int:
    from kfedge.targets import load_target, target_yaml, targets_table

    if args.action == "show":
        if not args.name:
            raise ConfigError("kfedge targets show needs a target name; see `kfedge targets`")
        print(target_yaml(load_target(args.name)))
    else:
        print(targets_table())
    return 0


def _cmd_techniques(args: argparse.Namespace) -> int:
    from kfedge.provision import TECHNIQUE_OUTPUT
    from kfedge.techniques import describe, get_technique

    if args.name:
        get_technique(args.name)  # unknown -> ConfigError listing the names
        (info,) = [d for d in describe() if d["name"] == args.name]
        print(json.dumps(info, indent=2))
        return 0
    for d in describe():
        fmt, mode = TECHNIQUE_OUTPUT.get(d["name"], ("?", "?"))
        print(f"{d['name']:20s} {fmt:6s} {mode:8s} {d['description']}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from kfedge.local_run import run_local

    result = run_local(
        model=args.model,
        data=args.data,
        target=args.target,
        techniques=args.techniques,
        goals=goals_from_args(args),
        epochs=args.epochs,
        calibration_samples=args.calibration_samples,
        latency_runs=args.latency_runs,
        output_dir=args.output_dir,
        deploy=not args.no_deploy,
    )
    if args.serve:
        if not result.get("selected_model"):
            raise ConfigError("no candidate was selected, so there is nothing to serve")
        from kfedge.serving import serve

        serve(result["selected_model"], name=result["selected"], port=args.port)
    return 0 if result.get("ok", True) else 1


def _cmd_compile(args: argparse.Namespace) -> int:
    from kfedge.pipelines.compile import compile_all

    stale = compile_all(check=args.check, output_dir=args.output_dir)
    if args.check and stale:
        print("stale compiled YAML (run `make compile`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from kfedge.submit import parse_params, submit

    run = submit(
        pipeline=args.pipeline,
        host=args.host,
        namespace=args.namespace,
        experiment=args.experiment,
        run_name=args.run_name,
        version_name=args.version_name,
        params=parse_params(args.param),
        wait=not args.no_wait,
        check=False,
    )
    print(json.dumps(run, indent=2))
    if args.no_wait:
        return 0
    if run.get("state") != "SUCCEEDED":
        print(
            f"kfedge submit: run {run.get('run_id')} ended {run.get('state')}: "
            f"{run.get('run_url')}",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from kfedge.serving import serve

    serve(args.model, name=args.name, port=args.port, host=args.host)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from kfedge.local_run import find_report
    from kfedge.report import print_summary

    path = find_report(args.path, args.output_dir)
    data = json.loads(path.read_text())
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(print_summary(data))
    html = path.with_name("report.html")
    print(f"report: {path}\nhtml:   {html.resolve().as_uri()}")
    if args.open:
        import webbrowser

        webbrowser.open(html.resolve().as_uri())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from kfedge.evaluate import evaluate, save_evaluation

    res = evaluate(args.model, args.data, latency_runs=args.latency_runs)
    if args.json:
        save_evaluation(res, Path(args.json))
    keep = ("name", "format", "accuracy", "latency_ms", "size_bytes", "size_gzip_bytes")
    print(json.dumps({k: res.get(k) for k in keep}, indent=2))
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "compile": _cmd_compile,
    "submit": _cmd_submit,
    "serve": _cmd_serve,
    "targets": _cmd_targets,
    "techniques": _cmd_techniques,
    "report": _cmd_report,
    "evaluate": _cmd_evaluate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kfedge`` console script.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 a check failed, 2 bad input or a kfedge error.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except KfedgeError as exc:
        print(f"kfedge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
