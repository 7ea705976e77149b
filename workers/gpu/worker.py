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
from fast3d_gpu.protocol import PROTOCOL_VERSION  # noqa: E402
from fast3d_gpu.server import Limits, Worker, make_server  # noqa: E402
from fast3d_gpu.memory import OFFLOAD_MODES  # noqa: E402
from fast3d_gpu.torch_provider import TorchOptions, TorchProvider  # noqa: E402
from fast3d_gpu.trellis_imports import ATTENTION_BACKENDS, SPCONV_ALGOS, import_worker_modules  # noqa: E402

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
    p.add_argument("--fake-no-mesh", action="store_true",
                   help="the fake provider answers as a worker started without --mesh does")
    p.add_argument("--fake-stage-seconds", type=float, default=float(env("FAKE_STAGE_SECONDS", "0")),
                   help="fake provider: seconds each pretend stage (and bake step) takes")
    p.add_argument("--fake-warmup-fail", default=env("FAKE_WARMUP_FAIL", ""),
                   help="fake provider: comma-separated warm-up outcomes, e.g. 'oom' (fails once, retried) or 'oom,oom'")
    p.add_argument("--fake-vram-gb", type=float, default=float(env("FAKE_VRAM_GB", "0")),
                   help="fake provider: the GPU memory it reports (0: none), from which --flux-offload auto chooses")
    p.add_argument("--flux-model", default=env("FLUX_MODEL", TorchOptions.flux_model),
                   help="FLUX.1-schnell: Hugging Face id or local folder")
    p.add_argument("--trellis-model", default=env("TRELLIS_MODEL", TorchOptions.trellis_model),
                   help="TRELLIS-image-large: Hugging Face id or local folder")
    p.add_argument("--flux-revision", default=env("FLUX_REVISION", TorchOptions.flux_revision),
                   help="FLUX.1-schnell hub commit (40 hex; default: the image's pin); empty: the recorded one, else "
                        "today's, recorded")
    p.add_argument("--trellis-revision", default=env("TRELLIS_REVISION", TorchOptions.trellis_revision),
                   help="TRELLIS-image-large hub commit (40 hex; default: the image's pin); empty: the recorded one, "
                        "else today's, recorded")
    p.add_argument("--revisions-file", default=env("REVISIONS_FILE", ""),
                   help="JSON file recording the hub commit each model was first downloaded at (empty: none)")
    p.add_argument("--state-dir", default=env("STATE_DIR", ""),
                   help="folder for the worker's derived files (the Gaussian-only TRELLIS folder); empty: a temp folder")
    p.add_argument("--dinov2-dir", default=env("DINOV2_DIR", ""),
                   help="pinned checkout of facebookresearch/dinov2 that TRELLIS's torch.hub.load uses (empty: torch.hub's)")
    p.add_argument("--flux-offload", choices=("auto",) + OFFLOAD_MODES,
                   default=env("FLUX_OFFLOAD", TorchOptions.flux_offload),
                   help="FLUX CPU offload: auto (from the GPU's memory), none (80 GB), model (48 GB), sequential (24 GB)")
    p.add_argument("--attention-backend", choices=ATTENTION_BACKENDS,
                   default=env("ATTENTION_BACKEND", TorchOptions.attention_backend),
                   help="TRELLIS attention, dense and sparse (sets ATTN_BACKEND and SPARSE_ATTN_BACKEND)")
    p.add_argument("--spconv-algo", choices=SPCONV_ALGOS, default=env("SPCONV_ALGO", TorchOptions.spconv_algo),
                   help="spconv algorithm: auto (benchmarks once; for servers), implicit_gemm, native (one-off runs)")
    p.add_argument("--check-imports", action="store_true",
                   help="import exactly what the real provider imports, print the versions, exit 0 (or 1 naming the failure)")
    p.add_argument("--no-flux", action="store_true", default=flag("NO_FLUX", False),
                   help="do not load FLUX (image-to-3D only)")
    p.add_argument("--mesh", action="store_true", default=flag("MESH", False),
                   help="also load TRELLIS's mesh decoder and to_glb's dependencies: /v1/image-to-3d then answers "
                        "mesh requests with a baked GLB (the fake provider always does)")
    p.add_argument("--no-warmup", action="store_true", default=flag("NO_WARMUP", False),
                   help="skip the warm-up run after loading")
    p.add_argument("--default-steps", type=int, default=int(env("DEFAULT_STEPS", "4")),
                   help="FLUX steps when a request names none")
    p.add_argument("--max-body-mb", type=int, default=int(env("MAX_BODY_MB", "64")), help="largest request body")
    p.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING, ERROR")
    return p.parse_args(argv)


def build_provider(args: argparse.Namespace):
    if args.fake:
        return FakeProvider(load_seconds=args.fake_load_seconds, fail_with=args.fake_fail,
                            vram_total=int(args.fake_vram_gb * 1024 ** 3) or None,
                            flux_offload=args.flux_offload, load_flux=not args.no_flux,
                            mesh=not args.fake_no_mesh, stage_seconds=args.fake_stage_seconds,
                            warmup_failures=[f for f in args.fake_warmup_fail.split(",") if f])
    return TorchProvider(TorchOptions(
        flux_model=args.flux_model,
        trellis_model=args.trellis_model,
        flux_revision=args.flux_revision,
        trellis_revision=args.trellis_revision,
        revisions_file=args.revisions_file,
        state_dir=args.state_dir,
        dinov2_dir=args.dinov2_dir,
        flux_offload=args.flux_offload,
        attention_backend=args.attention_backend,
        spconv_algo=args.spconv_algo,
        warmup=not args.no_warmup,
        load_flux=not args.no_flux,
        mesh=args.mesh,
    ))


def check_imports(args: argparse.Namespace) -> int:
    """What the image build and scripts/gpu-acceptance.sh run: the provider's own import function."""
    try:
        modules = import_worker_modules(args.attention_backend, args.spconv_algo, not args.no_flux, True, args.mesh)
    except Exception as err:  # noqa: BLE001 (any import-time failure is the answer)
        print(f"imports FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    torch = modules["torch"]
    stand_ins = modules.get("stand_ins") or []
    print(f"imports ok: torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"attention {args.attention_backend}, spconv {args.spconv_algo}, "
          f"FLUX {'yes' if 'FluxPipeline' in modules else 'skipped'}, TRELLIS yes, "
          f"meshes {'yes (to_glb)' if 'to_glb' in modules else 'off'}, "
          f"stand-ins: {', '.join(stand_ins) or 'none'}")
    return 0


def main(argv: list) -> int:
    args = parse_args(argv)
    if args.check_imports:
        return check_imports(args)
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
    print(f"fast3d-gpu-worker {__version__} listening on http://{host}:{port} provider={provider.name} "
          f"protocol={PROTOCOL_VERSION}", flush=True)
    worker.start_loading()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
