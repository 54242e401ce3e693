"""Container entry point: ``python -m kfedge.serving --model_name NAME --model_dir DIR``.

Takes KServe's standard model-server arguments (``--http_port``, ``--grpc_port``,
``--enable_grpc``, ``--max_threads``, ``--timeout-keep-alive``, ...; see ``kserve.model_server``)
plus kfedge's own (``--host`` and :mod:`kfedge.serving.options`: ``--max_batch``,
``--max_body_bytes``, ``--body_timeout``, ``--max_inflight``, ``--threads``,
``--infer_workers``, ``--max_batch_size``, ``--max_batch_wait_ms``, ``--providers``...);
``--ssl_certfile`` + ``--ssl_keyfile`` serve HTTPS. The default ``--host`` is ``0.0.0.0`` (a
pod must be reachable); pass ``--host 127.0.0.1`` to listen on loopback only. A model that
cannot be loaded, a port in use or unusable TLS files end the process with one error line and
exit status 2, before it serves.
"""

from __future__ import annotations

import argparse
import os
import sys

from kfedge.errors import KfedgeError


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server arguments plus kfedge's (:mod:`kfedge.serving.options`)."""
    from kserve import model_server

    from kfedge.serving.options import add_server_options

    parser = argparse.ArgumentParser(
        prog="python -m kfedge.serving",
        description="Serve a .tflite / .onnx model over KServe V1 + V2 (Open Inference Protocol).",
        parents=[model_server.parser],
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="Candidate directory (KServe mounts it at /mnt/models), model file, or s3:// URI.",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("KFEDGE_HOST", "0.0.0.0"),
        help="Listen address for HTTP and gRPC (127.0.0.1 = loopback only).",
    )
    add_server_options(parser, kserve_parser=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the model once, serve until SIGTERM.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status (0 after a graceful stop, 2 when the model cannot be served or the server
        cannot start; the reason in one line on stderr).
    """
    args = build_parser().parse_args(argv)
    from kfedge.serving.model import EdgeModel
    from kfedge.serving.options import server_kwargs
    from kfedge.serving.server import EdgeServer, configure_logging

    if args.workers != 1:
        print(
            f"error: --workers={args.workers}: kfedge's server runs one process per model "
            "(inference already runs on a thread pool); scale with replicas instead",
            file=sys.stderr,
        )
        return 2
    if not args.enable_grpc:
        args.grpc_port = None
    try:
        opts = server_kwargs(args)
    except KfedgeError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    configure_logging(opts.pop("log_level"))
    try:
        model = EdgeModel(
            args.model_name,
            args.model_dir,
            threads=opts["threads"],
            providers=opts["providers"],
            device=opts["device"],
            provider_options=opts["provider_options"],
            delegate=opts["delegate"],
            allow_cpu_fallback=opts["allow_cpu_fallback"],
            max_batch=opts["max_batch"],
            infer_workers=opts["infer_workers"],
            download_dir=opts["download_dir"],
            max_batch_size=opts["max_batch_size"],
            max_batch_wait_ms=opts["max_batch_wait_ms"],
        )
        server = EdgeServer(
            model,
            host=args.host,
            http_port=args.http_port,
            grpc_port=opts["grpc_port"],
            max_body_bytes=opts["max_body_bytes"],
            grpc_threads=args.max_threads,
            timeout_keep_alive=args.timeout_keep_alive,
            body_timeout=opts["body_timeout"],
            max_inflight=opts["max_inflight"],
            ssl_certfile=opts["ssl_certfile"],
            ssl_keyfile=opts["ssl_keyfile"],
            decode_processes=opts["decode_processes"],
        )
        server.bind()  # a port in use fails before the model is loaded
        model.load()
        server.run()
    except KfedgeError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    return 0


def printable(text: str) -> str:
    """One line: the first line of ``text``, what cannot be encoded escaped."""
    first = text.strip().splitlines()[0] if text.strip() else text
    return first.encode("utf-8", "backslashreplace").decode("utf-8")


if __name__ == "__main__":
    sys.exit(main())
