#!/usr/bin/env python3
"""fast3d GPU worker: `python3 workers/gpu/worker.py [--fake] [--host 127.0.0.1] [--port 9100] ...`

Serves FLUX.1-schnell and TRELLIS-image-large over loopback HTTP (protocol in docs/gpu-worker.md). The models
load in the background; GET /health reports progress, and why the worker is not ready when it cannot be
(e.g. torch not installed): the process stays up and says so instead of crash-looping.
Every flag has an environment variable (FAST3D_WORKER_<FLAG>) so process managers can set them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fast3d_gpu import __version__  # noqa: E402
from fast3d_gpu.fake import FakeProvider  # noqa: E402
from fast3d_gpu.server import Limits, Worker, make_server  # noqa: E402
from fast3d_gpu.torch_provider import TorchOptions, TorchProvider  # noqa: E402

log = logging.getLogger("fast3d.gpu")


def env(name: str, default: str) -> str:
    return os.environ.get(f"FAST3D_WORKER_{name}", default)


def flag(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")


def parse_args(argv: list) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="fast3d GPU worker (FLUX.1-schnell + TRELLIS) on loopback HTTP")
    p.add_argument("--host", default=env("HOST", "127.0.0.1"), help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=int(env("PORT", "9100")), help="TCP port (0 picks a free one)")
    p.add_argument("--fake", action="store_true", default=flag("FAKE", False),
                   help="serve the deterministic fake provider (tests; no torch needed)")
    p.add_argument("--fake-load-seconds", type=float, default=float(env("FAKE_LOAD_SECONDS", "0")),
                   help="fake provider: seconds 'loading' lasts")
    p.add_argument("--fake-fail", default=env("FAKE_FAIL", "") or None,
                   help="fake provider: fail loading with this message")
    p.add_argument("--flux-model", default=env("FLUX_MODEL", TorchOptions.flux_model),
                   help="FLUX.1-schnell: Hugging Face id or local folder")
    p.add_argument("--trellis-model", default=env("TRELLIS_MODEL", TorchOptions.trellis_model),
                   help="TRELLIS-image-large: Hugging Face id or local folder")
    p.add_argument("--flux-offload", choices=("none", "model", "sequential"),
                   default=env("FLUX_OFFLOAD", TorchOptions.flux_offload),
                   help="FLUX CPU offload: none (>= 40 GB cards), model (24 GB cards), sequential (least memory)")
    p.add_argument("--attention-backend", choices=("xformers", "flash_attn", "sdpa"),
                   default=env("ATTENTION_BACKEND", TorchOptions.attention_backend),
                   help="TRELLIS attention backend (its ATTN_BACKEND)")
    p.add_argument("--no-flux", action="store_true", default=flag("NO_FLUX", False),
                   help="do not load FLUX (image-to-3D only)")
    p.add_argument("--no-warmup", action="store_true", default=flag("NO_WARMUP", False),
                   help="skip the warm-up run after loading")
    p.add_argument("--default-steps", type=int, default=int(env("DEFAULT_STEPS", "4")),
                   help="FLUX steps when a request names none")
    p.add_argument("--max-body-mb", type=int, default=int(env("MAX_BODY_MB", "64")), help="largest request body")
    p.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING, ERROR")
    return p.parse_args(argv)


def build_provider(args: argparse.Namespace):
    if args.fake:
        return FakeProvider(load_seconds=args.fake_load_seconds, fail_with=args.fake_fail)
    return TorchProvider(TorchOptions(
        flux_model=args.flux_model,
        trellis_model=args.trellis_model,
        flux_offload=args.flux_offload,
        attention_backend=args.attention_backend,
        warmup=not args.no_warmup,
        load_flux=not args.no_flux,
    ))


def main(argv: list) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    provider = build_provider(args)
    worker = Worker(provider, Limits(max_body_bytes=args.max_body_mb * 1024 * 1024), default_steps=args.default_steps)
    try:
        server = make_server(worker, args.host, args.port)
    except OSError as err:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, err)
        return 1

    def stop(signum: int, _frame) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    # The first stdout line tells a parent process (tests, scripts) the port actually bound.
    print(f"fast3d-gpu-worker {__version__} listening on http://{host}:{port} provider={provider.name}", flush=True)
    worker.start_loading()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
