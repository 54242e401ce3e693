"""The model server's options, shared by ``python -m kfedge.serving`` and ``kfedge serve``.

Light on purpose (argparse only, no KServe import): ``kfedge --help`` builds every sub-command's
parser. :func:`add_server_options` adds the options, :func:`server_kwargs` turns the parsed
arguments into the keyword arguments of :func:`kfedge.serving.server.serve`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from kfedge.errors import InvalidInputError

#: The options' defaults (kept here so that this module imports nothing heavy).
DEFAULT_MAX_BATCH = 64
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_INFLIGHT = 64


def add_server_options(parser: Any, kserve_parser: bool = False) -> None:
    """Add the model server's options to ``parser`` (an ArgumentParser or an argument group).

    Args:
        parser: Where the options go.
        kserve_parser: True when ``parser`` already has KServe's model-server arguments
            (``--grpc_port``, ``--ssl_certfile``, ``--ssl_keyfile``); else they are added too.
    """
    if not kserve_parser:
        parser.add_argument(
            "--grpc_port", type=int, default=None, help="also serve V2 over gRPC on this port"
        )
        parser.add_argument("--ssl_certfile", default=None, help="PEM certificate: serve HTTPS")
        parser.add_argument(
            "--ssl_keyfile", default=None, help="PEM private key (with --ssl_certfile)"
        )
    parser.add_argument(
        "--max_batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help="largest batch one request may carry (default %(default)s)",
    )
    parser.add_argument(
        "--max_body_bytes",
        type=int,
        default=None,
        help="request body limit in bytes (default: derived from the model: max batch x input "
        "values x 24 bytes of JSON, at least 256 KiB, at most 16 MiB)",
    )
    parser.add_argument(
        "--body_timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        help="seconds a request body may take to arrive, then 408 (default %(default)s)",
    )
    parser.add_argument(
        "--max_inflight",
        type=int,
        default=DEFAULT_MAX_INFLIGHT,
        help="requests with a body read or answered at once, more get 503 (default %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="inference threads in all (default: all CPUs)"
    )
    parser.add_argument(
        "--infer_workers",
        type=int,
        default=None,
        help="inference workers, each with its own interpreter; the threads are split between "
        "them (default: one per CPU)",
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=0,
        help="dynamic batching: run concurrent requests together, up to this many examples "
        "(default 0 = off)",
    )
    parser.add_argument(
        "--max_batch_wait_ms",
        type=float,
        default=0.0,
        help="dynamic batching: how long a request may wait for others to join (default 0: "
        "only what queued while every worker was busy)",
    )
    parser.add_argument(
        "--decode_processes",
        type=int,
        default=1,
        help="processes that parse bodies over 1 MiB, so that probes keep answering (default "
        "%(default)s; 0 = worker threads)",
    )
    parser.add_argument(
        "--providers",
        default=None,
        help="comma-separated ONNX Runtime execution providers, in order of preference",
    )
    parser.add_argument(
        "--device",
        default="CPU",
        help="OpenVINO device for OpenVINO IR models: CPU, GPU or NPU (default %(default)s; "
        "an absent device falls back to the CPU, and /v2/models/NAME says so)",
    )
    parser.add_argument(
        "--provider_options",
        default=None,
        help='ONNX Runtime options per provider, as JSON: {"Provider": {"key": "value"}} (the '
        "target profile's onnx_provider_options)",
    )
    parser.add_argument(
        "--delegate", default=None, help="external TFLite delegate library (e.g. libedgetpu.so.1)"
    )
    parser.add_argument(
        "--cpu_fallback",
        choices=("allow", "refuse"),
        default="allow",
        help="when the accelerator asked for (provider, delegate, device) is absent: allow = run "
        "on the CPU and say so in /v2/models/NAME; refuse = fail to start, so the pod never "
        "becomes ready (default %(default)s)",
    )
    parser.add_argument("--download_dir", default=None, help="where a remote model is downloaded")
    parser.add_argument("--log_level", default=os.environ.get("KFEDGE_LOG_LEVEL", "INFO"))


def server_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`kfedge.serving.server.serve` from parsed options.

    Args:
        args: Arguments parsed by a parser that :func:`add_server_options` extended.

    Returns:
        Everything but the model, name, port and host.
    """
    providers = [p for p in args.providers.split(",") if p] if args.providers else None
    provider_options = None
    if args.provider_options:
        try:
            provider_options = json.loads(args.provider_options)
        except ValueError as exc:
            raise InvalidInputError(
                f"--provider_options must be JSON like "
                f'{{"Provider": {{"key": "value"}}}}, got {args.provider_options!r}: {exc}'
            ) from None
        if not isinstance(provider_options, dict) or not all(
            isinstance(v, dict) for v in provider_options.values()
        ):
            raise InvalidInputError(
                "--provider_options must map provider names to option objects, got "
                f"{args.provider_options!r}"
            )
        provider_options = {
            str(k): {str(kk): str(vv) for kk, vv in v.items()} for k, v in provider_options.items()
        }
    return {
        "provider_options": provider_options,
        "delegate": args.delegate,
        "allow_cpu_fallback": args.cpu_fallback == "allow",
        "grpc_port": args.grpc_port,
        "ssl_certfile": args.ssl_certfile,
        "ssl_keyfile": args.ssl_keyfile,
        "threads": args.threads,
        "providers": providers,
        "device": args.device,
        "max_batch": args.max_batch,
        "max_body_bytes": args.max_body_bytes,
        "body_timeout": args.body_timeout,
        "max_inflight": args.max_inflight,
        "infer_workers": args.infer_workers,
        "max_batch_size": args.max_batch_size,
        "max_batch_wait_ms": args.max_batch_wait_ms,
        "decode_processes": args.decode_processes,
        "download_dir": args.download_dir,
        "log_level": args.log_level,
    }
