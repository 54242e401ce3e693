"""Container entry point: ``python -m kfedge.serving --model_name NAME --model_dir DIR``.

Takes KServe's standard model-server arguments (``--http_port``, ``--grpc_port``,
``--enable_grpc``, ``--max_threads``, ``--timeout-keep-alive``, ...; see ``kserve.model_server``)
plus kfedge's own (``--host``, ``--max_batch``, ``--max_body_bytes``, ``--threads``,
``--providers``). The default ``--host`` is ``0.0.0.0`` (a pod must be reachable); pass
``--host 127.0.0.1`` to listen on loopback only. A model that cannot be loaded ends the process
with one error line and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from kfedge.errors import KfedgeError


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server arguments plus kfedge's."""
    from kserve import model_server

    from kfedge.serving.limits import DEFAULT_MAX_BODY_BYTES
    from kfedge.serving.model import DEFAULT_INFER_WORKERS, DEFAULT_MAX_BATCH

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
    parser.add_argument("--max_batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--threads", type=int, default=None, help="Inference threads.")
    parser.add_argument(
        "--providers",
        default=None,
        help="Comma-separated ONNX Runtime execution providers, in order of preference.",
    )
    parser.add_argument("--infer_workers", type=int, default=DEFAULT_INFER_WORKERS)
    parser.add_argument("--download_dir", default=None)
    parser.add_argument("--log_level", default=os.environ.get("KFEDGE_LOG_LEVEL", "INFO"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the model once, serve until SIGTERM.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status (0 after a graceful stop, 2 when the model cannot be served).
    """
    args = build_parser().parse_args(argv)
    from kfedge.serving.model import EdgeModel
    from kfedge.serving.server import EdgeServer, configure_logging

    configure_logging(args.log_level)
    log = logging.getLogger("kfedge.serving")
    if args.workers != 1:
        print(
            f"error: --workers={args.workers}: kfedge's server runs one process per model "
            "(inference already runs on a thread pool); scale with replicas instead",
            file=sys.stderr,
        )
        return 2
    try:
        model = EdgeModel(
            args.model_name,
            args.model_dir,
            threads=args.threads,
            providers=[p for p in args.providers.split(",") if p] if args.providers else None,
            max_batch=args.max_batch,
            infer_workers=args.infer_workers,
            download_dir=args.download_dir,
        )
        model.load()
        server = EdgeServer(
            model,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port if args.enable_grpc else None,
            max_body_bytes=args.max_body_bytes,
            grpc_threads=args.max_threads,
            timeout_keep_alive=args.timeout_keep_alive,
        )
    except KfedgeError as exc:
        log.error("cannot serve %s: %s", args.model_dir, exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
