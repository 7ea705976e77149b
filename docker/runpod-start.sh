#!/usr/bin/env bash
# Entry point of the fast3d GPU image (docker/Dockerfile); also usable on any GPU box with a checkout.
#
#   bash docker/runpod-start.sh            # start: model cache, weights, then pm2-runtime (service + GPU worker)
#   bash docker/runpod-start.sh --dry-run  # print what would happen, write the effective config, start nothing
#
# Modes (FAST3D_MODE; default: serverless when RunPod's RUNPOD_ENDPOINT_ID is set, else pod):
#   pod          the legacy miner contract on PORT (default 8093, the miner's default endpoint)
#   serverless   RunPod load-balancing endpoint: listen on PORT (default 80) and answer GET /ping on PORT_HEALTH
#                (default PORT) with 200 when ready, 204 while initialising (RunPod's /ping contract); when
#                PORT_HEALTH differs from PORT, a small relay (scripts/ping-relay.mjs) answers there
#   competition  the subnet's newer contract: port 10006 (PORT overrides) and /health {"status": "healthy"}
#
# Model cache: on RunPod's network volume when one is mounted (FAST3D_VOLUME, default /runpod-volume), so that
# weights download once per volume, not once per container; otherwise FAST3D_CACHE (default ./cache).
# Follows: RunPod docs "Load balancing endpoints" (PORT, PORT_HEALTH, /ping 200/204) and "Network volumes"
# (/runpod-volume); pm2 7 "pm2-runtime" for containers.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "runpod-start: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

APP_DIR="${FAST3D_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$APP_DIR"

MODE="${FAST3D_MODE:-}"
if [ -z "$MODE" ]; then
  if [ -n "${RUNPOD_ENDPOINT_ID:-}" ]; then MODE=serverless; else MODE=pod; fi
fi
HEALTH_OK=ok
PING_PORT=""
case "$MODE" in
  pod) PORT="${PORT:-8093}" ;;
  serverless)
    PORT="${PORT:-80}"
    PORT_HEALTH="${PORT_HEALTH:-$PORT}"
    if [ "$PORT_HEALTH" != "$PORT" ]; then PING_PORT="$PORT_HEALTH"; fi
    ;;
  competition) PORT="${PORT:-10006}"; HEALTH_OK=healthy ;;
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
MODELS_DIR="${FAST3D_MODELS:-$CACHE/models}"      # the service's model files (npm run weights)
RESULTS_DIR="${FAST3D_RESULTS:-$CACHE/results}"   # the result cache survives pod restarts too

RUN_DIR="${FAST3D_RUN_DIR:-$APP_DIR/run}"
BASE_CONFIG="${FAST3D_BASE_CONFIG:-$APP_DIR/configs/service.yaml}"
export FAST3D_CONFIG="$RUN_DIR/service.yaml"
export PORT
export FAST3D_PING_PORT="$PING_PORT"
export FAST3D_LOG_DIR="${FAST3D_LOG_DIR:-$APP_DIR/logs}"

echo "runpod-start: mode=$MODE port=$PORT health_ok=$HEALTH_OK ping_port=${PING_PORT:-same} config=$FAST3D_CONFIG"
echo "runpod-start: cache=$CACHE models=$MODELS_DIR results=$RESULTS_DIR HF_HOME=$HF_HOME TORCH_HOME=$TORCH_HOME python=${FAST3D_PYTHON:-python3}"

mkdir -p "$RUN_DIR" "$CACHE" "$FAST3D_LOG_DIR"
node scripts/effective-config.mjs --base "$BASE_CONFIG" --out "$FAST3D_CONFIG" \
  --set "server.port=$PORT" --set "server.health_ok_status=$HEALTH_OK" \
  --set "weights.dir=$MODELS_DIR" --set "cache.directory=$RESULTS_DIR"

run() {
  echo "runpod-start: $*"
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

run npm run weights -- --config "$FAST3D_CONFIG"
if [ "$DRY_RUN" = 0 ]; then
  exec npx --no-install pm2-runtime start pm2/ecosystem.config.cjs
fi
echo "runpod-start: exec npx --no-install pm2-runtime start pm2/ecosystem.config.cjs"
