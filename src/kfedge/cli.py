"""The ``kfedge`` command line.

Every :class:`~kfedge.errors.KfedgeError` becomes one clear line on stderr and exit code 2;
heavy frameworks and kfp are imported only by the sub-command that needs them.

A sub-command is one function, registered with :func:`command` together with its arguments
(:func:`arg`, :func:`group`); ``kfedge --help`` lists them in registration order::

    @command("hello", "say hello", arg("--name", default="world"))
    def _cmd_hello(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfedge._version import __version__
from kfedge.errors import ConfigError, KfedgeError
from kfedge.serving.options import add_server_options, server_kwargs

DEFAULT_OUTPUT = "local_outputs"

#: Adds one argument (or a group of them) to a parser.
ArgSpec = Callable[[Any], None]
Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A sub-command: its name, one-line help, arguments and the function that runs it."""

    name: str
    help: str
    run: Handler
    args: tuple[ArgSpec, ...] = ()
    description: str | None = None


#: The sub-commands by name, in the order ``kfedge --help`` lists them.
COMMANDS: dict[str, Command] = {}


def arg(*flags: str, **options: Any) -> ArgSpec:
    """An argument of a sub-command: the arguments of ``ArgumentParser.add_argument``."""
    return lambda parser: parser.add_argument(*flags, **options)


def group(title: str, *args: ArgSpec) -> ArgSpec:
    """Arguments shown under their own heading in the sub-command's help."""

    def add(parser: argparse.ArgumentParser) -> None:
        section = parser.add_argument_group(title)
        for spec in args:
            spec(section)

    return add


def command(
    name: str, help: str, *args: ArgSpec, description: str | None = None
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the sub-command ``name``.

    Args:
        name: The sub-command (``kfedge NAME``).
        help: One line for ``kfedge --help``.
        *args: Its arguments (:func:`arg`, :func:`group`).
        description: Longer text for ``kfedge NAME --help`` (default: ``help``).

    Returns:
        A decorator that registers the function (taking the parsed arguments, returning the
        exit code) and returns it unchanged.
    """

    def register(run: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"kfedge sub-command {name!r} is registered twice")
        COMMANDS[name] = Command(name, help, run, args, description)
        return run

    return register


def _pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named parsed arguments as keyword arguments."""
    return {n: getattr(args, n) for n in names}


#: "N, or TARGET=N,..." (a fleet's per-target values) in the goal flags' help.
_PER = "; per target in a fleet: TARGET=N,... (a bare N applies to the others)"

GOAL_ARGS = group(
    "goals (a candidate must meet all that are given)",
    arg(
        "--max-accuracy-drop",
        metavar="PTS",
        help="largest accuracy drop against the baseline, in points (default 1.5)" + _PER,
    ),
    arg("--max-latency-ms", metavar="MS", help="largest p50 latency" + _PER),
    arg(
        "--min-speedup",
        metavar="FRAC",
        help="smallest p50 latency improvement over the baseline, e.g. 0.2 = 20%%" + _PER,
    ),
    arg(
        "--max-size-mb",
        metavar="MB",
        help="largest model file in MB (1 MB = 1,000,000 bytes, as the report shows sizes)" + _PER,
    ),
    arg(
        "--objective",
        choices=["latency", "size", "accuracy"],
        default="latency",
        help="how to rank the candidates that pass (default: latency)",
    ),
)


def per_target_value(text: str | None, flag: str) -> tuple[float | None, dict[str, float]]:
    """A goal flag's value: ``N``, or ``TARGET=N,...`` (a fleet), or both (``N,TARGET=M``).

    Returns:
        The value for every target (None when only per-target values are given) and the
        per-target values.

    Raises:
        ConfigError: Not a number, a target named twice, or two bare values.
    """
    if text is None:
        return None, {}
    default: float | None = None
    per: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, _, value = part.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(
                f"{flag} expects N or TARGET=N,... (e.g. cpu-arm64=20,nvidia-jetson=5), "
                f"got {text!r}"
            ) from None
        if not name and default is not None or name in per:
            raise ConfigError(f"{flag} gives {name or 'the fleet-wide value'} twice in {text!r}")
        if name:
            per[name.strip()] = number
        else:
            default = number
    return default, per


def goals_from_args(args: argparse.Namespace) -> dict:
    """The goals dict (kfedge.select.Goals fields) from the CLI flags.

    Per-target values (``--max-latency-ms cpu-arm64=20``) go under ``targets``
    (:func:`kfedge.select.goals_for_target`).
    """
    goals: dict = {"objective": args.objective}
    fields = (  # goal field, argparse dest, flag, CLI unit -> goal unit
        ("max_accuracy_drop", "max_accuracy_drop", "--max-accuracy-drop", lambda v: v / 100.0),
        ("max_latency_ms", "max_latency_ms", "--max-latency-ms", float),
        ("min_latency_improvement", "min_speedup", "--min-speedup", float),
        ("max_size_mb", "max_size_mb", "--max-size-mb", float),  # 1 MB = 10^6 B, as reported
    )
    per_target: dict[str, dict] = {}
    for field, dest, flag, convert in fields:
        text = getattr(args, dest)
        default, per = per_target_value(text, flag)
        if field == "max_accuracy_drop" and default is None:
            default = 1.5
        for value in [default, *per.values()]:
            if field == "max_accuracy_drop" and value is not None and value < 0:
                raise ConfigError(f"--max-accuracy-drop must be >= 0 points, got {value}")
        if default is not None:
            goals[field] = convert(default)
        for name, value in per.items():
            per_target.setdefault(name, {})[field] = convert(value)
    if per_target:
        goals["targets"] = per_target
    return goals


# --------------------------------------------------------------------------- sub-commands


@command(
    "run",
    "run the pipeline on this machine (kfp.local); no arguments = the built-in sample",
    arg(
        "--model",
        default="sample://baseline",
        help="model URI: sample://baseline, a path, file:// or s3:// (.keras, .h5, "
        "SavedModel, .tflite, .onnx)",
    ),
    arg(
        "--data",
        default="sample://digits",
        help="data URI: sample://digits, an .npz (x, y), an image-folder tree, or s3://",
    ),
    arg(
        "--target",
        default="cpu-amd64",
        help="target profile name or YAML file (see `kfedge targets`); several, comma-separated "
        "(cpu-arm64,intel-cpu-openvino): a fleet run (edge-fleet), each technique once, every "
        "target measured, selected by its own goals and deployed",
    ),
    arg(
        "--techniques",
        default="auto",
        help="comma-separated techniques, or 'auto' for the target's default plan",
    ),
    arg(
        "--epochs",
        type=int,
        default=0,
        help="fine-tune epochs for QAT / pruning / clustering (0 = technique default)",
    ),
    arg(
        "--calibration-samples", type=int, default=0, help="INT8 calibration samples (0 = default)"
    ),
    arg(
        "--latency-runs",
        type=int,
        default=30,
        help="timed runs of each candidate's own evaluation (a rough figure: the side-by-side "
        "benchmark step's timings decide)",
    ),
    arg("--output-dir", default=DEFAULT_OUTPUT, help="where runs and reports go"),
    arg(
        "--no-deploy",
        action="store_true",
        help="stop after the report (edge-optimize; a fleet: each target's report, none deployed)",
    ),
    arg(
        "--runner",
        choices=["subprocess", "docker"],
        default="subprocess",
        help="subprocess: every step in this virtualenv; docker: every step in its image (the "
        "component image; evaluate and benchmark in the serving image), as on a cluster "
        "(`make images` builds them)",
    ),
    arg(
        "--serve",
        action="store_true",
        help="after the run, keep serving the selected model in the foreground",
    ),
    arg("--port", type=int, default=8080, help="port for --serve"),
    GOAL_ARGS,
    description="Run edge-optimize-deploy through kfp.local on this machine. With no "
    "arguments it trains the built-in sample baseline on the handwritten digits that ship "
    "with scikit-learn, optimizes it, evaluates every candidate, writes the report, selects "
    "one and smoke-tests it on a local KServe endpoint.",
)
def _cmd_run(args: argparse.Namespace) -> int:
    from kfedge.local_run import run_local

    result = run_local(
        **_pick(args, "model", "data", "target", "techniques", "epochs"),
        **_pick(args, "calibration_samples", "latency_runs", "output_dir", "runner"),
        goals=goals_from_args(args),
        deploy=not args.no_deploy,
    )
    if args.serve:
        if "targets" in result:
            raise ConfigError(
                "--serve serves one model; a fleet run deploys one per target (see its "
                "endpoint.json files): serve one with `kfedge serve <candidate dir>`"
            )
        if not result.get("selected_model"):
            raise ConfigError("no candidate was selected, so there is nothing to serve")
        from kfedge.serving import serve

        serve(result["selected_model"], name=result["selected"], port=args.port)
    return 0 if result.get("ok", True) else 1


@command(
    "compile",
    "regenerate the checked-in component and pipeline YAML",
    arg(
        "--check",
        action="store_true",
        help="only check that the checked-in YAML is current (exit 1 when stale)",
    ),
    arg("--output-dir", help="write there instead of next to the sources"),
    arg(
        "--registry",
        help="rewrite every kfedge image to this registry (e.g. registry.local:5000/team); "
        "written to --output-dir (default build/yaml), never over the checked-in YAML",
    ),
)
def _cmd_compile(args: argparse.Namespace) -> int:
    from kfedge.pipelines.compile import REGISTRY_OUTPUT_DIR, compile_all

    output_dir = args.output_dir or (REGISTRY_OUTPUT_DIR if args.registry else None)
    done = compile_all(check=args.check, output_dir=output_dir, registry=args.registry)
    if args.check and done:
        print("stale compiled YAML (run `make compile`): " + ", ".join(done), file=sys.stderr)
        return 1
    if args.registry:
        print(f"{len(done)} files with images from {args.registry} in {output_dir}")
    return 0


@command(
    "submit",
    "upload a pipeline to Kubeflow Pipelines and start a run",
    arg("--host", help="KFP API endpoint (default: KF_PIPELINES_ENDPOINT or in-cluster)"),
    arg("--namespace", help="Kubeflow profile namespace"),
    arg(
        "--pipeline",
        default="edge-optimize-deploy",
        help="edge-optimize-deploy | edge-optimize | edge-evaluate | edge-fleet, or a YAML file",
    ),
    arg("--experiment", default="kfedge", help="experiment name"),
    arg("--run-name", help="run name (default: pipeline name + time)"),
    arg("--version-name", help="upload as a new version of the pipeline with this name"),
    arg(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline parameter (JSON values allowed), repeatable",
    ),
    arg("--no-wait", action="store_true", help="do not wait for the run to finish"),
    group(
        "recurring run (instead of one run; max concurrency 1, no catch-up; see "
        "`kfedge schedules`)",
        arg(
            "--schedule",
            metavar="CRON",
            help="KFP cron, 6 fields, seconds first: '0 0 2 * * *' = daily 02:00 UTC; "
            "or @daily, @hourly, '@every 6h'",
        ),
        arg("--interval", type=int, metavar="SECONDS", help="start a run every SECONDS"),
    ),
)
def _cmd_submit(args: argparse.Namespace) -> int:
    from kfedge.submit import parse_params, submit

    recurring = args.schedule is not None or args.interval is not None
    if recurring and args.schedule is not None and args.interval is not None:
        raise ConfigError("give --schedule or --interval, not both")
    trigger = {"schedule": args.schedule} if args.schedule is not None else {}
    if args.interval is not None:
        trigger = {"interval": args.interval}
    run = submit(
        **_pick(args, "pipeline", "host", "namespace", "experiment", "run_name", "version_name"),
        params=parse_params(args.param),
        wait=not (args.no_wait or recurring),
        check=False,
        **trigger,
    )
    print(json.dumps(run, indent=2))
    if args.no_wait or recurring:
        return 0
    if run.get("state") != "SUCCEEDED":
        print(
            f"kfedge submit: run {run.get('run_id')} ended {run.get('state')}: "
            f"{run.get('run_url')}",
            file=sys.stderr,
        )
        return 1
    return 0


@command(
    "schedules",
    "list, pause, resume or delete recurring runs on Kubeflow Pipelines",
    arg("action", choices=["list", "pause", "resume", "delete"], nargs="?", default="list"),
    arg("which", nargs="?", help="recurring run ID, or its name when unique (not for list)"),
    arg("--host", help="KFP API endpoint (default: KF_PIPELINES_ENDPOINT or in-cluster)"),
    arg("--namespace", help="Kubeflow profile namespace"),
    arg("--experiment", help="list only this experiment's recurring runs"),
    arg("--json", action="store_true", help="print JSON"),
    description="Recurring runs are created with `kfedge submit --schedule CRON` or "
    "`--interval SECONDS`. pause stops new runs (the KFP UI's disable), resume starts them "
    "again, delete removes the recurring run (its past runs stay).",
)
def _cmd_schedules(args: argparse.Namespace) -> int:
    from kfedge.schedules import list_schedules, schedule_action

    if args.action == "list":
        if args.which:
            raise ConfigError("kfedge schedules list takes no ID; use --experiment to filter")
        found = list_schedules(args.host, args.namespace, args.experiment)
        if args.json:
            print(json.dumps(found, indent=2))
        elif not found:
            print("no recurring runs")
        for s in [] if args.json else found:
            print(f"{s['recurring_run_id']}  {s['status']:<9} {s['trigger']:<24} {s['name']}")
        return 0
    if not args.which:
        raise ConfigError(f"kfedge schedules {args.action} needs a recurring run ID or name")
    print(json.dumps(schedule_action(args.action, args.which, args.host, args.namespace), indent=2))
    return 0


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    from kfedge.doctor import add_arguments

    add_arguments(parser)


@command(
    "doctor",
    "check a cluster for a kfedge run (KFP, KServe, nodes, S3, images); read-only",
    _doctor_arguments,
    description="Tells, before a run, what a real cluster lacks: the KFP backend version "
    "against the support matrix, KServe and the kfedge-edge runtime, nodes matching the "
    "target, its RuntimeClass and device resources, the S3 Secret in the namespace, the "
    "images' platforms. One line per finding, with the fix; exit 1 when a check failed.",
)
def _cmd_doctor(args: argparse.Namespace) -> int:
    from kfedge.doctor import run_from_args

    return run_from_args(args)


@command(
    "serve",
    "serve a .tflite / .onnx model (KServe V1 + V2) in the foreground",
    arg("model", help="model file, candidate directory, or s3:// URI"),
    arg("--name", default="model", help="model name in the URL paths"),
    arg("--port", type=int, default=8080),
    arg("--host", default="127.0.0.1", help="bind address (default loopback only)"),
    add_server_options,  # the options of python -m kfedge.serving (argparse only)
)
def _cmd_serve(args: argparse.Namespace) -> int:
    from kfedge.serving import serve

    serve(args.model, name=args.name, port=args.port, host=args.host, **server_kwargs(args))
    return 0


@command(
    "targets",
    "list the edge target profiles, or show one",
    arg("action", nargs="?", choices=["list", "show"], default="list"),
    arg("name", nargs="?", help="target name (for show)"),
)
def _cmd_targets(args: argparse.Namespace) -> int:
    from kfedge.targets import load_target, target_yaml, targets_table

    if args.action == "show":
        if not args.name:
            raise ConfigError("kfedge targets show needs a target name; see `kfedge targets`")
        print(target_yaml(load_target(args.name)))
    else:
        print(targets_table())
    return 0


@command(
    "techniques",
    "list the optimization techniques and their parameters",
    arg("name", nargs="?", help="show one technique's parameters (JSON schema)"),
)
def _cmd_techniques(args: argparse.Namespace) -> int:
    from kfedge.techniques import describe, get_technique

    if args.name:
        get_technique(args.name)  # unknown -> ConfigError listing the names
        (info,) = [d for d in describe() if d["name"] == args.name]
        print(json.dumps(info, indent=2))
        return 0
    for d in describe():
        fmt, mode = d["output_format"], d["quant_mode"]
        print(f"{d['name']:20s} {fmt:6s} {mode:8s} {d['description']}")
    return 0


@command(
    "report",
    "print the last report (or open its HTML page)",
    arg("path", nargs="?", help="report.json or a run directory (default: the last run)"),
    arg("--output-dir", default=DEFAULT_OUTPUT),
    arg(
        "--open",
        action="store_true",
        help="print the HTML report's file:// URL and open it in a browser when one is available",
    ),
    arg("--json", action="store_true", help="print the JSON report"),
)
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


@command(
    "evaluate",
    "evaluate one model on a dataset (accuracy, latency, size)",
    arg("model"),
    arg("data", help="split dataset directory or .npz"),
    arg("--json", help="write the evaluation JSON here"),
    arg("--latency-runs", type=int, default=200),
)
def _cmd_evaluate(args: argparse.Namespace) -> int:
    from kfedge.evaluate import evaluate, save_evaluation

    res = evaluate(args.model, args.data, latency_runs=args.latency_runs)
    if args.json:
        save_evaluation(res, Path(args.json))
    keep = {"name", "format", "accuracy", "latency_ms", "size_bytes", "size_gzip_bytes"}
    print(json.dumps(res.model_dump(mode="json", include=keep), indent=2))
    return 0


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    """The ``kfedge`` argument parser, with one sub-parser per registered command."""
    parser = argparse.ArgumentParser(
        prog="kfedge",
        description="Take a trained model to an edge device on Kubeflow: provision, optimize, "
        "evaluate, report, select and deploy to KServe.",
    )
    parser.add_argument("--version", action="version", version=f"kfedge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help)
        for spec in cmd.args:
            spec(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kfedge`` console script.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 a check failed, 2 bad input or a kfedge error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command].run(args)
    except KfedgeError as exc:
        print(f"kfedge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
