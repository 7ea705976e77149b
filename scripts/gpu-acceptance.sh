#!/usr/bin/env bash
# Acceptance on a GPU box: does this image build's stack work here, within the budgets of the mode it serves?
# Run it inside the container (docker exec CONTAINER bash scripts/gpu-acceptance.sh) or in a checkout with the
# worker's Python, once the service and the GPU worker are up (docker/runpod-start.sh, or pm2) and the weights
# are present:
#
#   bash scripts/gpu-acceptance.sh [--mode auto|ply|glb] [--jobs N] [--config FILE] [--url URL] [--worker URL]
#                                  [--out DIR] [--image FILE] [--seed N] [--previous DIR] [--dry-run]
#
# Modes (--mode; auto, the default, takes contract.image_file_output from the service's config):
#   ply   competition 0, and pod or serverless mode: POST /generate answers a Gaussian-splat PLY; every image job
#         within 30 s
#   glb   competition 1 (FAST3D_COMPETITION_OUTPUT=glb): POST /generate answers a GLB mesh; the trimmed median of
#         at least 5 image jobs within 90 s (a failed job counts as 180 s, as the orchestrator counts it; its trim,
#         6 fastest and 6 slowest dropped, leaves the median as it is), none over the hard 180 s; the worker must
#         make meshes (--mesh)
# The config is the one the running service uses: --config, else FAST3D_CONFIG, else the start script's effective
# config ${FAST3D_RUN_DIR:-run}/service.yaml when it exists (docker exec does not see the FAST3D_CONFIG the start
# script exported), else configs/service.yaml. The service's and the worker's URLs default to that config's.
#   --jobs N       image jobs to time, one after another (default 5)
#   --image FILE   the picture to send instead of the two-tone test object (sent as prompt.jpg, image/jpeg)
#   --seed N       the same-seed check's seed (default 4242)
#   --previous DIR an earlier run's --out (before a restart, or on another box with the same card): its same-seed
#                  assets are compared with this run's, made from its framed input and seed
#   --dry-run      rehearse against a service whose GPU worker is the fake provider (worker.py --fake): every row
#                  runs as on a GPU box except the imports (the real provider's need torch: the row shows the
#                  command) and, without nvidia-smi, the GPU memory, which say n/a; the orientation check renders
#                  nothing. It proves the script, not the box.
#
# It prints the mode it tested, then one row per check, PASS / FAIL / n/a, and exits 1 when any row failed:
#   mode           the mode, the config, the URLs; FAIL when the service does not serve that mode (another output
#                  in its config, a glb mode whose worker makes no meshes, the fake worker outside a dry run)
#   ready          the service's /health reports ready, and how long that took to see
#   imports        the worker's own import chain (worker.py --check-imports, with --mesh in glb mode), as the
#                  image build runs it
#   weights        npm run weights -- --check for the backends of the config the service uses
#   orientation    scripts/orientation-check.ts on the two-tone picture (red above blue); the configured rotation
#                  must give an asset whose red half is at +Y; look at compare.png for the front as well
#   image jobs     N x POST /generate as the orchestrator sends it: prompt_image_file ("prompt.jpg", image/jpeg)
#                  and a fresh seed (so the result cache cannot answer); every answer 200
#   PLY            ply mode: every answer a PLY the packer and the validator's gates accept (fast3d check)
#   GLB            glb mode: every answer a GLB that passes fast3d check (glTF validator, one mesh, inside the
#                  configured cube, size), saved as image-K.glb
#   time           each job from sending the request to the response headers, against the mode's budget
#   text job       POST /generate/ with a text prompt: a valid PLY within 30 s (n/a when the text stage is not on
#                  the GPU in this mode)
#   same seed PLY  the worker's TRELLIS twice with one seed: the same PLY bytes (the service's result cache would
#                  make a service-level repeat trivially equal, so the worker is asked directly)
#   same seed GLB  glb mode: that seed's two GLBs rendered as the validator does (fast3d render, 16 views at
#                  256 px), PSNR at least 25 dB: GLBs are not byte-identical (docs/gpu-worker.md, Determinism)
#   previous run   with --previous: this run's same-seed PLY bytes and GLB renders against that run's
#   GPU memory     the peak nvidia-smi saw while the checks ran; FAIL above 90 % of the card
set -uo pipefail

help() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
integer() { [[ "$2" =~ ^[0-9]+$ ]] || { echo "gpu-acceptance: $1 must be a whole number, not '$2'" >&2; exit 2; }; }

MODE=auto
JOBS=5
CONFIG="${FAST3D_CONFIG:-}"
CONFIG_FROM="FAST3D_CONFIG"
URL="${FAST3D_URL:-}"
WORKER="${FAST3D_WORKER_URL:-}"
OUT=""
IMAGE=""
SAME_SEED=4242
PREVIOUS=""
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE="${2:-}"; shift 2 ;;
    --jobs) integer --jobs "${2:-}"; JOBS="$2"; shift 2 ;;
    --config) CONFIG="$(absolute "${2:-}")"; CONFIG_FROM="--config"; shift 2 ;;
    --url) URL="${2:-}"; shift 2 ;;
    --worker) WORKER="${2:-}"; shift 2 ;;
    --out) OUT="$(absolute "${2:-}")"; shift 2 ;;
    --image) IMAGE="$(absolute "${2:-}")"; shift 2 ;;
    --seed) integer --seed "${2:-}"; SAME_SEED="$2"; shift 2 ;;
    --previous) PREVIOUS="$(absolute "${2:-}")"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) help; exit 0 ;;
    *) echo "gpu-acceptance: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$MODE" in auto|ply|glb) ;; *) echo "gpu-acceptance: --mode must be auto, ply or glb, not '$MODE'" >&2; exit 2 ;; esac
if [ "$JOBS" -lt 1 ]; then echo "gpu-acceptance: --jobs must be at least 1" >&2; exit 2; fi
if [ -n "$CONFIG" ] && [ "$CONFIG_FROM" = FAST3D_CONFIG ]; then CONFIG="$(absolute "$CONFIG")"; fi
if [ -n "$IMAGE" ] && [ ! -f "$IMAGE" ]; then echo "gpu-acceptance: --image $IMAGE not found" >&2; exit 2; fi
if [ -n "$PREVIOUS" ] && [ ! -d "$PREVIOUS/same-seed" ]; then
  echo "gpu-acceptance: --previous $PREVIOUS has no same-seed folder (give an earlier run's --out)" >&2; exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "$CONFIG" ]; then
  RUN_CONFIG="${FAST3D_RUN_DIR:-run}/service.yaml"
  if [ -f "$RUN_CONFIG" ]; then CONFIG="$RUN_CONFIG"; CONFIG_FROM="the start script's effective config"
  else CONFIG=configs/service.yaml; CONFIG_FROM="no $RUN_CONFIG: the repository's config"; fi
fi
OUT="${OUT:-out/acceptance}"
PYTHON="${FAST3D_PYTHON:-python3}"
PROBE=(node --import tsx scripts/acceptance-probe.ts)
FAST3D=(node --import tsx src/cli.ts)
mkdir -p "$OUT"
if [ -n "$PREVIOUS" ] && [ "$PREVIOUS" -ef "$OUT" ]; then
  echo "gpu-acceptance: --previous must be another folder than --out ($OUT), which this run overwrites" >&2; exit 2
fi
ROWS=()
FAILED=0
row() {  # row NAME STATUS DETAIL
  ROWS+=("$(printf '%-15s %-5s %s' "$1" "$2" "$3")")
  if [ "$2" = FAIL ]; then FAILED=1; fi
  echo "gpu-acceptance: $1: $2 $3" >&2
}
table() {
  echo
  echo "tested mode: $MODE ($DESCRIPTION)$([ "$DRY_RUN" = 1 ] && echo '; DRY RUN: proves the script, not this box')"
  printf '%-15s %-5s %s\n' check result detail
  for r in "${ROWS[@]}"; do echo "$r"; done
}
json_field() {  # json_field DOTTED.PATH < JSON: the value, or nothing
  node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
    let v; try { v = process.argv[1].split(".").reduce((o, k) => (o == null ? undefined : o[k]), JSON.parse(s)); } catch {}
    if (v !== undefined && v !== null) process.stdout.write(String(v)); });' "$1"
}
sha() { sha256sum < "$1" | cut -c1-16; }

# The mode, from the config the service runs with.
if ! facts=$("${PROBE[@]}" config "$CONFIG" 2>&1); then
  DESCRIPTION="unknown: the config could not be read"
  row mode FAIL "$CONFIG ($CONFIG_FROM): $(echo "$facts" | head -3 | tr '\n' ' ')"
  table; exit 1
fi
fact() { sed -n "s/^$1=//p" <<< "$facts"; }
OUTPUT=$(fact output)
if [ "$MODE" = auto ]; then MODE="$OUTPUT"; fi
case "$MODE" in
  ply) DESCRIPTION="competition 0, pod or serverless: Gaussian-splat PLY answers, each job within 30 s"; EXT=ply ;;
  glb) DESCRIPTION="competition 1: GLB mesh answers, trimmed median within 90 s, none over 180 s"; EXT=glb ;;
esac
if [ "$MODE" = glb ] && [ "$JOBS" -lt 5 ]; then
  echo "gpu-acceptance: glb mode times at least 5 jobs (--jobs $JOBS)" >&2; exit 2
fi
URL="${URL:-http://127.0.0.1:${PORT:-$(fact port)}}"
WORKER="${WORKER:-$(fact worker)}"
WORKER="${WORKER:-http://127.0.0.1:9100}"

# Peak GPU memory: sample in the background for the whole run.
MEMLOG="$OUT/gpu-memory.csv"
rm -f "$MEMLOG"
SAMPLER=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits -lms 200 > "$MEMLOG" 2>/dev/null &
  SAMPLER=$!
fi
stop_sampler() { if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=""; fi; }
trap stop_sampler EXIT

# Ready (the start-up budget is 30 minutes: wait at most that long), then what the worker says it is.
started=$(date +%s)
health=""
until health=$(curl -sf "$URL/health") || [ $(( $(date +%s) - started )) -ge 1800 ]; do sleep 5; done
waited=$(( $(date +%s) - started ))
worker_health=$(curl -s "$WORKER/health")
provider=$(json_field provider <<< "$worker_health")
meshes=$(json_field mesh <<< "$worker_health")
detail="config $CONFIG ($CONFIG_FROM); service $URL; worker $WORKER (provider ${provider:-unknown}, meshes $([ "$meshes" = true ] && echo on || echo off))"
if [ "$MODE" != "$OUTPUT" ]; then
  row mode FAIL "$MODE asked, but the service answers $OUTPUT (contract.image_file_output); $detail"
elif [ "$MODE" = glb ] && [ "$meshes" != true ]; then
  row mode FAIL "$MODE, but the worker makes no meshes: start it with --mesh (FAST3D_WORKER_MESH=1); $detail"
elif [ "$provider" = fake ] && [ "$DRY_RUN" = 0 ]; then
  row mode FAIL "$MODE, but the worker is the fake provider, which proves nothing about this box (--dry-run rehearses); $detail"
else
  row mode PASS "$MODE; $detail"
fi
if [ -n "$health" ]; then row ready PASS "$URL/health ready after $waited s of waiting"
else row ready FAIL "$URL/health not ready within 30 minutes: $(curl -s "$URL/health" | head -c 300)"; fi

# Imports: what the image build runs, with the mesh stack when meshes are served.
IMPORTS=(workers/gpu/worker.py --check-imports)
if [ "$MODE" = glb ]; then IMPORTS+=(--mesh); fi
if [ "$DRY_RUN" = 1 ]; then row imports n/a "dry run (the fake has no import chain); on the box: $PYTHON ${IMPORTS[*]}"
elif out=$("$PYTHON" "${IMPORTS[@]}" 2>&1); then row imports PASS "${IMPORTS[*]:1}: ${out#imports ok: }"
else row imports FAIL "${IMPORTS[*]:1}: $(echo "$out" | tail -1)"; fi

# Weights, for the backends of the config the service runs with.
if out=$("${FAST3D[@]}" weights --check --config "$CONFIG" 2>&1); then
  if grep -q 'load no model files' <<< "$out"; then row weights PASS "$CONFIG loads no model files in the Node process"
  else row weights PASS "all $(grep -c '^ok' <<< "$out") files $CONFIG loads are present and intact"; fi
else row weights FAIL "$CONFIG: $(echo "$out" | grep -v '^ok' | head -3 | tr '\n' ' ')"; fi

# Orientation, on the picture the jobs send.
PICTURE="${IMAGE:-$OUT/prompt.jpg}"
if [ -z "$IMAGE" ]; then "${PROBE[@]}" picture "$PICTURE"; fi
ORIENTATION=(--image "$PICTURE" --config "$CONFIG" --out "$OUT/orientation")
if [ "$DRY_RUN" = 1 ]; then ORIENTATION+=(--no-render); fi
rm -f "$OUT/orientation/input.png"
if node --import tsx scripts/orientation-check.ts "${ORIENTATION[@]}" > "$OUT/orientation.log" 2>&1; then
  look="confirm the front in $OUT/orientation/compare.png"
  if [ "$DRY_RUN" = 1 ]; then look="no renders in a dry run"; fi
  if [ -n "$IMAGE" ]; then row orientation PASS "ran on $IMAGE; $look (upright, same side)"
  elif up=$("${PROBE[@]}" upright "$OUT/orientation/configured.ply"); then row orientation PASS "$up; $look"
  else row orientation FAIL "$up: set image_to_3d.gpu_worker.orientation from $OUT/orientation/candidates.png"; fi
else row orientation FAIL "$(tail -1 "$OUT/orientation.log")"; fi

# Image jobs as the orchestrator sends them; fresh seeds, so the result cache cannot answer.
SEED=$(( $(date +%s) % 100000 + 1000 ))
rm -f "$OUT"/image-*.ply "$OUT"/image-*.glb
"${PROBE[@]}" jobs "$URL" "$PICTURE" "$SEED" "$JOBS" "$OUT/image" "$EXT" > "$OUT/jobs.tsv"
ANSWERED=()
refused=""
while IFS=$'\t' read -r seed code seconds type; do
  k=$(( seed - SEED + 1 ))
  if [ "$code" = 200 ]; then ANSWERED+=("$OUT/image-$k.$EXT")
  elif [ -z "$refused" ]; then refused="; job $k: HTTP $code after ${seconds} s: $(head -c 200 "$OUT/image-$k.$EXT" 2>/dev/null)"; fi
done < "$OUT/jobs.tsv"
if [ "${#ANSWERED[@]}" = "$JOBS" ]; then row "image jobs" PASS "$JOBS of $JOBS answered 200 (prompt.jpg, image/jpeg; seeds $SEED..$(( SEED + JOBS - 1 )))"
else row "image jobs" FAIL "${#ANSWERED[@]} of $JOBS answered 200$refused"; fi
verdict_of_check() {  # verdict_of_check FORMAT: fast3d check over the answers, one row
  local format="$1" out
  if [ "${#ANSWERED[@]}" = 0 ]; then row "$format" FAIL "no answer to check"; return; fi
  if out=$("${FAST3D[@]}" check "${ANSWERED[@]}" --config "$CONFIG" 2>&1) && [ "${#ANSWERED[@]}" = "$JOBS" ]; then
    row "$format" PASS "all $JOBS answers are ${format}s fast3d check accepts; $(head -1 <<< "$out" | sed "s|^ok *$OUT/||")"
  else
    row "$format" FAIL "$(grep -c '^ok' <<< "$out") of $JOBS pass fast3d check as $format; $(grep -v '^ok' <<< "$out" | head -2 | sed "s|$OUT/||" | tr '\n' ' ')"
  fi
}
if [ "$MODE" = ply ]; then
  verdict_of_check PLY
  row GLB n/a "ply mode answers PLY; a service started with FAST3D_COMPETITION_OUTPUT=glb is tested in glb mode"
else
  row PLY n/a "glb mode answers GLB meshes"
  verdict_of_check GLB
fi
if out=$("${PROBE[@]}" budget "$MODE" "$OUT/jobs.tsv"); then row time PASS "$out"; else row time FAIL "$out"; fi

# The legacy text job, where the text stage is on the GPU (pod mode).
if [ "$(json_field stages.text_to_image.backend <<< "$health")" = gpu-worker ]; then
  line=$("${PROBE[@]}" text "$URL" "a red wooden chair" "$SEED" "$OUT/text.ply")
  code=$(cut -f2 <<< "$line"); seconds=$(cut -f3 <<< "$line")
  if [ "$code" != 200 ]; then row "text job" FAIL "HTTP $code: $(head -c 300 "$OUT/text.ply")"
  elif ! out=$("${FAST3D[@]}" check "$OUT/text.ply" 2>&1); then row "text job" FAIL "PLY: $out"
  elif ! awk -v t="$seconds" 'BEGIN { exit !(t <= 30) }'; then row "text job" FAIL "$seconds s, OVER 30 s"
  else row "text job" PASS "${seconds} s; PLY: ${out#ok   }"; fi
else
  row "text job" n/a "the text stage is not on the GPU in this mode (FAST3D_COMPETITION_TEXT=1 or pod mode serves it)"
fi

# Same seed: the worker twice (an audit regenerates and compares); with --previous, against that run too.
SAME="$OUT/same-seed"
rm -rf "$SAME"; mkdir -p "$SAME"
if [ -n "$PREVIOUS" ]; then cp "$PREVIOUS/same-seed/input.png" "$SAME/input.png" 2>/dev/null; SAME_SEED=$(cat "$PREVIOUS/same-seed/seed" 2>/dev/null || echo "$SAME_SEED")
else cp "$OUT/orientation/input.png" "$SAME/input.png" 2>/dev/null; fi
echo "$SAME_SEED" > "$SAME/seed"
views() {  # views FILE.glb OUT.png: the validator's 16 views in one grid
  "${FAST3D[@]}" render "$1" --preset validator --size 256 --grid --out "$2" > /dev/null 2>&1
}
glb_psnr() {  # glb_psnr A.png B.png: "PSNR NN.N dB" or "identical", exit 1 below the bar
  "${PROBE[@]}" psnr "$1" "$2"
}
if [ ! -f "$SAME/input.png" ]; then
  row "same seed PLY" FAIL "no framed input (the orientation check did not get that far)"
elif ! out=$("${PROBE[@]}" same-seed "$WORKER" "$CONFIG" "$SAME/input.png" "$SAME_SEED" "$SAME" $([ "$MODE" = glb ] && echo --mesh) 2>&1); then
  row "same seed PLY" FAIL "the worker did not answer twice: $(tail -1 <<< "$out")"
else
  a=$(sha "$SAME/a.ply"); b=$(sha "$SAME/b.ply")
  if [ "$a" = "$b" ] && [ -s "$SAME/a.ply" ]; then row "same seed PLY" PASS "seed $SAME_SEED twice: sha256 $a both times"
  else row "same seed PLY" FAIL "seed $SAME_SEED twice: sha256 $a vs $b (docs/gpu-worker.md, Determinism)"; fi
  if [ "$MODE" = glb ]; then
    if ! views "$SAME/a.glb" "$SAME/a-views.png" || ! views "$SAME/b.glb" "$SAME/b-views.png"; then
      row "same seed GLB" FAIL "fast3d render could not render $SAME/a.glb and b.glb"
    elif db=$(glb_psnr "$SAME/a-views.png" "$SAME/b-views.png"); then
      row "same seed GLB" PASS "seed $SAME_SEED twice: 16 validator views $db (bar: 25 dB); sha256 $(sha "$SAME/a.glb") and $(sha "$SAME/b.glb")"
    else row "same seed GLB" FAIL "seed $SAME_SEED twice: 16 validator views $db, under the 25 dB bar"; fi
  else
    row "same seed GLB" n/a "ply mode makes no GLB"
  fi
fi
if [ -z "$PREVIOUS" ]; then
  row "previous run" n/a "no --previous: after a restart, or on another box with this card, run again with --previous $OUT"
elif [ ! -s "$SAME/a.ply" ]; then
  row "previous run" FAIL "this run made no same-seed asset to compare"
else
  verdict="PLY sha256 $(sha "$PREVIOUS/same-seed/a.ply") then $(sha "$SAME/a.ply")"
  ok=1
  if ! cmp -s "$PREVIOUS/same-seed/a.ply" "$SAME/a.ply"; then ok=0; verdict="$verdict (differ)"; fi
  if [ "$MODE" = glb ]; then
    if [ -f "$PREVIOUS/same-seed/a.glb" ] && { [ -f "$PREVIOUS/same-seed/a-views.png" ] || views "$PREVIOUS/same-seed/a.glb" "$SAME/previous-views.png"; }; then
      before="$PREVIOUS/same-seed/a-views.png"; [ -f "$before" ] || before="$SAME/previous-views.png"
      if db=$(glb_psnr "$before" "$SAME/a-views.png"); then verdict="$verdict; GLB views $db"
      else ok=0; verdict="$verdict; GLB views $db, under the 25 dB bar"; fi
    else ok=0; verdict="$verdict; $PREVIOUS has no GLB of that seed"; fi
  fi
  if [ "$ok" = 1 ]; then row "previous run" PASS "seed $SAME_SEED against $PREVIOUS: $verdict"
  else row "previous run" FAIL "seed $SAME_SEED against $PREVIOUS: $verdict (docs/gpu-worker.md, Determinism: --spconv-algo)"; fi
fi

# Peak GPU memory, against the card.
stop_sampler
if [ -s "$MEMLOG" ] && out=$("${PROBE[@]}" memory "$MEMLOG"); then row "GPU memory" PASS "$out"
elif [ -s "$MEMLOG" ] && [ -n "$out" ] && ! grep -q 'no samples' <<< "$out"; then row "GPU memory" FAIL "$out"
elif [ "$DRY_RUN" = 1 ]; then row "GPU memory" n/a "dry run without nvidia-smi"
else row "GPU memory" FAIL "nvidia-smi not found or gave no samples"; fi

table
exit "$FAILED"
