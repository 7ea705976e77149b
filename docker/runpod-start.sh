#!/usr/bin/env bash
# Entry point of the fast3d GPU image (docker/Dockerfile); also usable on any GPU box with a checkout.
#
#   bash docker/runpod-start.sh            # start: model cache, weights, then pm2-runtime (service + GPU worker)
#   bash docker/runpod-start.sh --dry-run  # print what would happen, write the effective config, start nothing
#   bash docker/runpod-start.sh --no-start # everything but starting the processes (fills the cache, writes config)
#
# Modes (FAST3D_MODE; default: serverless when RunPod's RUNPOD_ENDPOINT_ID is set, else FAST3D_DEFAULT_MODE,
# which the image sets to competition, else pod):
#   pod          the legacy miner contract on PORT (default 8093, the miner's default endpoint)
#   serverless   RunPod load-balancing endpoint: listen on PORT (default 80) and answer GET /ping on PORT_HEALTH
#                (default PORT) with 200 when ready, 204 while initialising (RunPod's /ping contract); when
#                PORT_HEALTH differs from PORT, a small relay (scripts/ping-relay.mjs) answers there
#   competition  the subnet's image contract (404-gen-subnet Competitions/competition0.md): 0.0.0.0:10006 (PORT
#                overrides), /health {"status": "healthy"}, one request at a time, no retry (30 s budget),
#                structural gates only, and an image-only GPU worker (no FLUX: the contract sends images);
#                FAST3D_COMPETITION_TEXT=1 keeps FLUX and the text stage; FAST3D_COMPETITION_OUTPUT=glb answers
#                GLB meshes (competition1.md) instead of PLY (competition0.md), and starts the worker with meshes
#
# HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) is passed to the GPU worker: FLUX.1-schnell is gated on its hub, so a
# mode that loads FLUX needs the token of an account that accepted its licence. It is never printed.
# The weights step never stops the start: a file it could not fetch or make is named on /health instead.
# FAST3D_WEIGHTS_MIRROR fetches the service's model files from a copy of your own (weights --mirror).
#
# Model cache: on RunPod's network volume when one is mounted (FAST3D_VOLUME, default /runpod-volume), so that
# weights download once per volume, not once per container; otherwise FAST3D_CACHE (default ./cache).
# Follows: RunPod docs "Load balancing endpoints" (PORT, PORT_HEALTH, /ping 200/204) and "Network volumes"
# (/runpod-volume); pm2 7 "pm2-runtime" for containers.
set -euo pipefail

DRY_RUN=0
NO_START=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --no-start) NO_START=1 ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "runpod-start: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

APP_DIR="${FAST3D_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$APP_DIR"

MODE="${FAST3D_MODE:-}"
if [ -z "$MODE" ]; then
  if [ -n "${RUNPOD_ENDPOINT_ID:-}" ]; then MODE=serverless; else MODE="${FAST3D_DEFAULT_MODE:-pod}"; fi
fi
HEALTH_OK=ok
PING_PORT=""
MODE_SETTINGS=()
case "$MODE" in
  pod) PORT="${PORT:-8093}" ;;
  serverless)
    PORT="${PORT:-80}"
    PORT_HEALTH="${PORT_HEALTH:-$PORT}"
    if [ "$PORT_HEALTH" != "$PORT" ]; then PING_PORT="$PORT_HEALTH"; fi
    ;;
  competition)
    PORT="${PORT:-10006}"; HEALTH_OK=healthy
    export HOST=0.0.0.0   # the contract: listen on 0.0.0.0:10006, whatever HOST the platform set
    MODE_SETTINGS+=(--set server.host=0.0.0.0 --set runtime.pipeline_concurrency=1 --set pipeline.retries=0
                    --set "validate.checks=[gates]")
    case "${FAST3D_COMPETITION_OUTPUT:-ply}" in
      ply) ;;
      # Competition 1's hard limit is 180 s per asset: a job still running at 170 s answers 503, so the next
      # request (sent as soon as headers arrive) does not wait behind one that can no longer count.
      glb) MODE_SETTINGS+=(--set contract.image_file_output=glb --set runtime.deadline_s=170); export FAST3D_WORKER_MESH=1 ;;
      *) echo "runpod-start: FAST3D_COMPETITION_OUTPUT must be ply or glb, not '${FAST3D_COMPETITION_OUTPUT}'" >&2; exit 2 ;;
    esac
    if [ "${FAST3D_COMPETITION_TEXT:-0}" != 1 ]; then
      export FAST3D_WORKER_NO_FLUX=1
      MODE_SETTINGS+=(--set text_to_image.backend=preview)
    fi
    ;;
  *) echo "runpod-start: FAST3D_MODE must be pod, serverless or competition, not '$MODE'" >&2; exit 2 ;;
esac
for p in "$PORT" ${PING_PORT:+"$PING_PORT"}; do
  if ! [[ "$p" =~ ^[0-9]+$ ]] || [ "$p" -gt 65535 ]; then
    echo "runpod-start: port '$p' is not a number in 0..65535" >&2; exit 2
  fi
done

VOLUME="${FAST3D_VOLUME:-/runpod-volume}"
if [ -d "$VOLUME" ] && [ -w "$VOLUME" ]; then
  CACHE="$VOLUME/fast3d-cache"
  export HF_HOME="${HF_HOME:-$VOLUME/huggingface-cache}"
else
  CACHE="${FAST3D_CACHE:-$APP_DIR/cache}"
  export HF_HOME="${HF_HOME:-$CACHE/huggingface}"
fi
export TORCH_HOME="${TORCH_HOME:-$CACHE/torch}"   # TRELLIS loads DINOv2 through torch.hub
export U2NET_HOME="${U2NET_HOME:-$CACHE/u2net}"   # rembg, imported by TRELLIS
# CUDA's JIT cache (spconv's and gsplat's kernels on cards their wheels lack code for, Blackwell first) on the volume,
# large enough (4 GiB, CUDA's maximum) that a restart does not compile them again.
export CUDA_CACHE_PATH="${CUDA_CACHE_PATH:-$CACHE/cuda-jit}"
export CUDA_CACHE_MAXSIZE="${CUDA_CACHE_MAXSIZE:-4294967296}"
# The hub commit each model was first downloaded at, next to the weights: later starts load exactly it.
export FAST3D_WORKER_REVISIONS_FILE="${FAST3D_WORKER_REVISIONS_FILE:-$HF_HOME/fast3d-revisions.json}"
if [ -z "${HF_TOKEN:-}" ] && [ -n "${HUGGING_FACE_HUB_TOKEN:-}" ]; then export HF_TOKEN="$HUGGING_FACE_HUB_TOKEN"; fi
if [ -n "${HF_TOKEN:-}" ]; then export HF_TOKEN; HF_TOKEN_STATE=set; else HF_TOKEN_STATE=unset; fi
MODELS_DIR="${FAST3D_MODELS:-$CACHE/models}"      # the service's model files (npm run weights)
RESULTS_DIR="${FAST3D_RESULTS:-$CACHE/results}"   # the result cache survives pod restarts too

RUN_DIR="${FAST3D_RUN_DIR:-$APP_DIR/run}"
BASE_CONFIG="${FAST3D_BASE_CONFIG:-$APP_DIR/configs/service.yaml}"
export FAST3D_CONFIG="$RUN_DIR/service.yaml"
export PORT
export FAST3D_PING_PORT="$PING_PORT"
export FAST3D_LOG_DIR="${FAST3D_LOG_DIR:-$APP_DIR/logs}"
export FAST3D_WORKER_STATE_DIR="${FAST3D_WORKER_STATE_DIR:-$RUN_DIR/worker}"

echo "runpod-start: mode=$MODE port=$PORT health_ok=$HEALTH_OK ping_port=${PING_PORT:-same} config=$FAST3D_CONFIG"
echo "runpod-start: cache=$CACHE models=$MODELS_DIR results=$RESULTS_DIR HF_HOME=$HF_HOME TORCH_HOME=$TORCH_HOME python=${FAST3D_PYTHON:-python3}"
echo "runpod-start: CUDA_CACHE_PATH=$CUDA_CACHE_PATH CUDA_CACHE_MAXSIZE=$CUDA_CACHE_MAXSIZE"
FLUX_STATE=loaded
if [ "${FAST3D_WORKER_NO_FLUX:-0}" = 1 ]; then FLUX_STATE=off; fi
echo "runpod-start: hf_token=$HF_TOKEN_STATE (passed to the GPU worker) flux=$FLUX_STATE meshes=$([ "${FAST3D_WORKER_MESH:-0}" = 1 ] && echo on || echo off) revisions=$FAST3D_WORKER_REVISIONS_FILE"
if [ "$FLUX_STATE" = loaded ] && [ "$HF_TOKEN_STATE" = unset ]; then
  echo "runpod-start: WARNING: HF_TOKEN is not set and FLUX.1-schnell is gated on its hub: unless its files are already" \
       "in HF_HOME, the worker will report 'MODEL LICENCE NOT ACCEPTED' on /health. Accept the licence on the model's" \
       "hub page and start with HF_TOKEN set." >&2
fi

mkdir -p "$RUN_DIR" "$CACHE" "$FAST3D_LOG_DIR"
node scripts/effective-config.mjs --base "$BASE_CONFIG" --out "$FAST3D_CONFIG" \
  --set "server.port=$PORT" --set "server.health_ok_status=$HEALTH_OK" \
  --set "weights.dir=$MODELS_DIR" --set "cache.directory=$RESULTS_DIR" ${MODE_SETTINGS[@]+"${MODE_SETTINGS[@]}"}

run() {
  echo "runpod-start: $*"
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

# Downloads the service's model files and makes the converted ones. Under set -e a failure here would exit the
# container and the platform would restart it in a loop; instead the service starts and /health names the file.
WEIGHTS_ARGS=(--config "$FAST3D_CONFIG")
if [ -n "${FAST3D_WEIGHTS_MIRROR:-}" ]; then WEIGHTS_ARGS+=(--mirror "$FAST3D_WEIGHTS_MIRROR"); fi
if ! run npm run weights -- "${WEIGHTS_ARGS[@]}"; then
  echo "runpod-start: WARNING: some model files could not be fetched or made; starting anyway, /health names them" >&2
fi
if [ "$DRY_RUN" = 1 ] || [ "$NO_START" = 1 ]; then
  echo "runpod-start: exec npx --no-install pm2-runtime start pm2/ecosystem.config.cjs (not started)"
  exit 0
fi
exec npx --no-install pm2-runtime start pm2/ecosystem.config.cjs
