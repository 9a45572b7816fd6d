"""`mask2hand serve`: the local web app and HTTP API (mask2hand.serve), one model, one process.

Loads the model once, listens on --host:--port (127.0.0.1:8000 by default: this machine only)
and serves the page at / and the API under /api/ with uvicorn until Ctrl-C, its connections
limited by mask2hand.serve.connections. Needs the optional extra: pip install 'mask2hand[serve]'.
"""

from __future__ import annotations

import argparse
import math
import socket

from mask2hand.errors import Mask2HandError
from mask2hand.serve import DEFAULT_MAX_UPLOAD_MB, DEFAULT_READ_TIMEOUT_S
from mask2hand.serve.prediction_queue import DEFAULT_MAX_QUEUE

INSTALL_HINT = "mask2hand serve needs FastAPI and uvicorn: pip install 'mask2hand[serve]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every "
                             "network interface)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    parser.add_argument("--checkpoint", metavar="W|NAME",
                        help="weights or checkpoint file, or a shipped model's name (default: the shipped "
                             "pretrained model; see `mask2hand models`)")
    parser.add_argument("--hand", choices=("open", "mano"),
                        help="hand model (default: the one the weights were trained with)")
    parser.add_argument("--mano", metavar="PATH", help="MANO_RIGHT.pkl, for weights trained with MANO")
    parser.add_argument("--device", default="auto", help="torch device: auto (default: CUDA when present, else the "
                                                       "CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help="largest request accepted, in MB; larger ones are answered 413 (default: %(default)g)")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
                        help="predictions that may wait behind the running one; more are answered 503 with "
                             "Retry-After (default: %(default)d)")
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_S, metavar="S",
                        help="seconds a request (headers and upload) may take to arrive before its connection is "
                             "closed (default: %(default)g)")


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: FastAPI's form parser)
        import uvicorn  # noqa: F401
    except ImportError:
        raise Mask2HandError(INSTALL_HINT) from None


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket on host:port, made here so that a port in use is one clear error (and
    port 0 a free port whose number can be printed) rather than a server that fails after loading."""
    if not 0 <= port <= 65535:
        raise Mask2HandError(f"--port must be from 0 to 65535, got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise Mask2HandError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                             "or --host") from None


def check_positive(value: float, option: str) -> float:
    """`value` if it is a finite number above 0; Mask2HandError naming `option` otherwise."""
    if not (math.isfinite(value) and value > 0):
        raise Mask2HandError(f"{option} must be a positive number, got {value:g}")
    return value


def run(args: argparse.Namespace) -> int:
    _require_extra()
    import uvicorn

    from mask2hand.inference.api import Mask2Hand
    from mask2hand.serve.app import create_app
    from mask2hand.serve.connections import (BACKLOG, IDLE_TIMEOUT_S, ConnectionLimits, connection_limit,
                                             guarded_protocol)

    check_positive(args.max_upload_mb, "--max-upload-mb")
    check_positive(args.read_timeout, "--read-timeout")
    if args.max_queue < 0:
        raise Mask2HandError(f"--max-queue must be 0 or more, got {args.max_queue}")
    if args.mano and args.hand not in (None, "mano"):
        raise Mask2HandError("--mano is for --hand mano; drop one of them")
    limits = ConnectionLimits(max_connections=connection_limit(), read_timeout=args.read_timeout)
    sock = listening_socket(args.host, args.port)
    try:
        hand = args.hand or ("mano" if args.mano else None)
        model = Mask2Hand.from_pretrained(args.checkpoint, hand_model=hand, mano_path=args.mano, device=args.device)
        app = create_app(model, max_upload_mb=args.max_upload_mb, max_queue=args.max_queue, host=args.host)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"mask2hand serve: {model.model_identity['weights']} on http://{shown}:{port}/ "
              "(API under /api/; Ctrl-C stops)", flush=True)
        # one process, one worker: the model is loaded once and requests take turns on it
        # ws_max_size: a live frame (mask2hand.serve.live) is bounded by the upload limit too
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", workers=1, http=guarded_protocol(limits),
                                               timeout_keep_alive=IDLE_TIMEOUT_S, backlog=BACKLOG,
                                               ws_max_size=int(args.max_upload_mb * 2 ** 20)))
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
