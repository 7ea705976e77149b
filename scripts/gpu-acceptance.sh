#!/usr/bin/env bash
# Acceptance on a GPU box: does this image build's stack work here, within the subnet's budgets?
# Run it inside the container (or a checkout with the worker's Python) once the service and the GPU worker are
# up (docker/runpod-start.sh, or pm2) and the weights are present:
#
#   bash scripts/gpu-acceptance.sh [--url http://127.0.0.1:10006] [--worker http://127.0.0.1:9100]
#                                  [--config run/service.yaml] [--out out/acceptance] [--image object.png]
#
# It prints one row per check, PASS / FAIL / n/a, and exits 1 when any row failed:
#   imports        the worker's own import chain (worker.py --check-imports), as the image build runs it
#   weights        npm run weights -- --check for the config's backends
#   ready          the service's /health reports ready, and how long that took to see
#   orientation    scripts/orientation-check.ts on a two-tone picture (red above blue); the configured rotation
#                  must give an asset whose red half is at +Y; look at compare.png for the front as well
#   image job      POST /generate with prompt_image_file and seed: a PLY the packer and the gates accept
#   text job       POST /generate/ with a text prompt (n/a when the text stage is not on the GPU in this mode)
#   GLB            n/a until meshes exist
#   time           each job from request to response headers (curl's time to first byte) against the
#                  competitions' 30 s (splats) and 90 s (meshes, trimmed median) budgets
#   same seed      the worker's TRELLIS twice with one seed: the same bytes (the service's result cache would
#                  make a service-level repeat trivially equal, so the worker is asked directly)
#   GPU memory     the peak nvidia-smi saw while the checks ran, against the card's total
set -uo pipefail

URL="${FAST3D_URL:-http://127.0.0.1:${PORT:-10006}}"
WORKER="${FAST3D_WORKER_URL:-http://127.0.0.1:9100}"
CONFIG="${FAST3D_CONFIG:-configs/service.yaml}"
OUT="out/acceptance"
IMAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --url) URL="$2"; shift 2 ;;
    --worker) WORKER="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu-acceptance: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${FAST3D_PYTHON:-python3}"
mkdir -p "$OUT"
ROWS=()
FAILED=0
row() {  # row NAME STATUS DETAIL
  ROWS+=("$(printf '%-15s %-5s %s' "$1" "$2" "$3")")
  if [ "$2" = FAIL ]; then FAILED=1; fi
  echo "gpu-acceptance: $1: $2 $3" >&2
}
budget() {  # budget NAME SECONDS
  local verdict
  verdict=$(awk -v t="$2" 'BEGIN { s = (t <= 30 ? "within 30 s" : "OVER 30 s"); s = s ", " (t <= 90 ? "within 90 s" : "OVER 90 s"); print s }')
  row "$1" "$(awk -v t="$2" 'BEGIN { print (t <= 30 ? "PASS" : "FAIL") }')" "$(printf '%.1f s: %s' "$2" "$verdict")"
}

# Peak GPU memory: sample in the background for the whole run.
MEMLOG="$OUT/gpu-memory.csv"
SAMPLER=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits -lms 200 > "$MEMLOG" 2>/dev/null &
  SAMPLER=$!
fi
stop_sampler() { if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=""; fi; }
trap stop_sampler EXIT

# 1. imports
if out=$("$PYTHON" workers/gpu/worker.py --check-imports 2>&1); then row imports PASS "${out#imports ok: }"
else row imports FAIL "$(echo "$out" | tail -1)"; fi

# 2. weights
if out=$(npm run --silent weights -- --check --config "$CONFIG" 2>&1); then row weights PASS "all files of $CONFIG present and intact"
else row weights FAIL "$(echo "$out" | grep -v '^ok' | head -3 | tr '\n' ' ')"; fi

# 3. ready (the start-up budget is 30 minutes: wait at most that long)
started=$(date +%s)
health=""
until health=$(curl -sf "$URL/health") || [ $(( $(date +%s) - started )) -ge 1800 ]; do sleep 5; done
if [ -n "$health" ]; then row ready PASS "$URL/health ready after $(( $(date +%s) - started )) s of waiting"
else row ready FAIL "$URL/health not ready within 30 minutes: $(curl -s "$URL/health" | head -c 300)"; fi

# 4. orientation
PICTURE="${IMAGE:-$OUT/object.png}"
if [ -z "$IMAGE" ]; then npx tsx scripts/acceptance-probe.ts picture "$PICTURE"; fi
if npx tsx scripts/orientation-check.ts --image "$PICTURE" --config "$CONFIG" --out "$OUT/orientation" > "$OUT/orientation.log" 2>&1; then
  if [ -n "$IMAGE" ]; then row orientation PASS "ran; confirm $OUT/orientation/compare.png by eye (upright, same side)"
  elif up=$(npx tsx scripts/acceptance-probe.ts upright "$OUT/orientation/configured.ply"); then
    row orientation PASS "$up; confirm the front in $OUT/orientation/compare.png"
  else row orientation FAIL "$up: set image_to_3d.gpu_worker.orientation from $OUT/orientation/candidates.png"; fi
else row orientation FAIL "$(tail -1 "$OUT/orientation.log")"; fi

# 5. jobs (fresh seeds, so the result cache cannot answer)
SEED=$(( $(date +%s) % 100000 + 1000 ))
job() {  # job NAME OUTFILE CURL-ARGS...
  local name="$1" file="$2"; shift 2
  local answer code seconds
  answer=$(curl -s -o "$file" -w '%{http_code} %{time_starttransfer}' "$@") || answer="000 0"
  code=${answer%% *}; seconds=${answer##* }
  if [ "$code" != 200 ]; then row "$name" FAIL "HTTP $code: $(head -c 300 "$file" 2>/dev/null)"; return; fi
  if out=$(npm run --silent fast3d -- check "$file" 2>&1); then row "$name" PASS "PLY: ${out#ok   }"
  else row "$name" FAIL "PLY: $out"; fi
  budget "$name time" "$seconds"
}
job "image job" "$OUT/image.ply" -F "prompt_image_file=@$PICTURE" -F "seed=$SEED" "$URL/generate"
text_on_gpu() {
  node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
    let backend; try { backend = JSON.parse(s).stages.text_to_image.backend; } catch {}
    process.exit(backend === "gpu-worker" ? 0 : 1); });'
}
if echo "$health" | text_on_gpu; then
  job "text job" "$OUT/text.ply" --data-urlencode "prompt=a red wooden chair" -d "seed=$SEED" "$URL/generate/"
else
  row "text job" n/a "the text stage is not on the GPU in this mode (FAST3D_COMPETITION_TEXT=1 or pod mode serves it)"
fi
row GLB n/a "meshes (competition 1) are not produced yet"

# 6. same seed, same bytes (the worker's TRELLIS, twice)
FRAMED="$OUT/orientation/input.png"
if [ -f "$FRAMED" ]; then
  body="$OUT/splat-request.json"
  printf '{"image": "%s", "seed": %d}' "$(base64 -w0 "$FRAMED")" "$SEED" > "$body"
  curl -s -o "$OUT/seed-a.ply" -H 'Content-Type: application/json' --data-binary "@$body" "$WORKER/v1/image-to-3d"
  curl -s -o "$OUT/seed-b.ply" -H 'Content-Type: application/json' --data-binary "@$body" "$WORKER/v1/image-to-3d"
  a=$(sha256sum < "$OUT/seed-a.ply" | cut -c1-16); b=$(sha256sum < "$OUT/seed-b.ply" | cut -c1-16)
  if [ "$a" = "$b" ] && [ -s "$OUT/seed-a.ply" ]; then row "same seed" PASS "seed $SEED twice: sha256 $a both times"
  else row "same seed" FAIL "seed $SEED twice: sha256 $a vs $b (docs/gpu-worker.md, Determinism)"; fi
else
  row "same seed" FAIL "no framed input (the orientation check did not get that far)"
fi

# 7. peak GPU memory
stop_sampler
if [ -s "$MEMLOG" ]; then
  row "GPU memory" PASS "$(awk -F', *' '{ if ($1 > m) m = $1; t = $2 } END { printf "peak %.1f GiB of %.1f GiB", m / 1024, t / 1024 }' "$MEMLOG")"
else
  row "GPU memory" FAIL "nvidia-smi not found or gave no samples"
fi

echo
printf '%-15s %-5s %s\n' check result detail
for r in "${ROWS[@]}"; do echo "$r"; done
exit "$FAILED"
