/**
 * pm2 process file: the fast3d service (compiled JavaScript: run `npm run build` first) and the GPU worker.
 *
 *   npm run build && npx pm2 start pm2/ecosystem.config.cjs     # on a GPU box
 *   pm2-runtime pm2/ecosystem.config.cjs                        # in a container (docker/runpod-start.sh)
 *
 * Environment (all optional):
 *   FAST3D_CONFIG            service config (default configs/service.yaml)
 *   FAST3D_PYTHON            Python with torch, diffusers and TRELLIS for the worker (default python3)
 *   HF_TOKEN                 hub token for the worker (FLUX.1-schnell is gated)
 *   FAST3D_WORKER_*          worker flags, e.g. FAST3D_WORKER_PORT, FAST3D_WORKER_FLUX_OFFLOAD (see worker.py)
 *   FAST3D_LOG_DIR           log files (default logs/ in the checkout)
 *   FAST3D_SERVICE_MAX_MEMORY, FAST3D_WORKER_MAX_MEMORY   pm2 restarts a process above this resident size
 *   FAST3D_PING_PORT         RunPod load balancing: also answer GET /ping on this port (PORT_HEALTH != PORT)
 *
 * The service runs through dist/cli.js: pm2's fork mode loads scripts through its own container, and the CLI
 * reads its arguments the same way either way. pm2 7 will not start a .ts entry on Node < 22.18.
 */
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = process.env;
const logs = env.FAST3D_LOG_DIR || path.join(root, 'logs');
const config = env.FAST3D_CONFIG || path.join(root, 'configs', 'service.yaml');

const service = {
  name: 'fast3d',
  cwd: root,
  script: 'dist/cli.js',
  args: ['serve', '--config', config],
  interpreter: 'node',
  exec_mode: 'fork',
  instances: 1,
  autorestart: true,
  // A process that dies within min_uptime counts toward max_restarts; then pm2 stops trying (and says so).
  max_restarts: 10,
  min_uptime: '30s',
  exp_backoff_restart_delay: 1000,
  max_memory_restart: env.FAST3D_SERVICE_MAX_MEMORY || '8G',
  // The service finishes in-flight jobs for server.shutdown_grace_s (30 s) after SIGINT.
  kill_timeout: 35_000,
  // Signal the service only: its ffmpeg children must finish the videos being drained, and die with it.
  treekill: false,
  out_file: path.join(logs, 'fast3d.out.log'),
  error_file: path.join(logs, 'fast3d.err.log'),
  merge_logs: true,
  time: true,
  env: { NODE_ENV: 'production', ORT_DISABLE_TELEMETRY: '1' },
};

const worker = {
  name: 'fast3d-gpu-worker',
  cwd: root,
  script: 'workers/gpu/worker.py',
  interpreter: env.FAST3D_PYTHON || 'python3',
  exec_mode: 'fork',
  instances: 1,
  autorestart: true,
  // Loading FLUX and TRELLIS takes minutes: a restart loop would never get there, so back off and stop.
  max_restarts: 5,
  min_uptime: '120s',
  exp_backoff_restart_delay: 5000,
  // Resident memory on the host, not VRAM: FLUX with CPU offload keeps its weights in host RAM.
  max_memory_restart: env.FAST3D_WORKER_MAX_MEMORY || '64G',
  kill_timeout: 15_000,
  out_file: path.join(logs, 'gpu-worker.out.log'),
  error_file: path.join(logs, 'gpu-worker.err.log'),
  merge_logs: true,
  time: true,
  // HF_TOKEN reaches the worker explicitly (FLUX.1-schnell is gated on its hub); huggingface_hub reads it.
  env: { PYTHONUNBUFFERED: '1', ...(env.HF_TOKEN ? { HF_TOKEN: env.HF_TOKEN } : {}) },
};

const apps = [service, worker];

if (env.FAST3D_PING_PORT) {
  apps.push({
    name: 'fast3d-ping',
    cwd: root,
    script: 'scripts/ping-relay.mjs',
    args: ['--listen', env.FAST3D_PING_PORT, '--target', `http://127.0.0.1:${env.PORT || 8093}/ping`],
    interpreter: 'node',
    autorestart: true,
    max_restarts: 10,
    min_uptime: '10s',
    max_memory_restart: '200M',
    out_file: path.join(logs, 'ping.out.log'),
    error_file: path.join(logs, 'ping.err.log'),
    merge_logs: true,
    time: true,
  });
}

module.exports = { apps };
