/**
 * Worker thread of the asset pool: reads one user asset at a time. Whatever goes wrong reading a file is that
 * file's fault and goes back as one sentence; the pool stops this thread if the file takes it past its time or
 * its heap.
 */
import { parentPort } from 'node:worker_threads';
import { decodeGlb } from '../mesh/glb.js';
import { DEFAULT_GLB_LIMITS } from '../mesh/glb-limits.js';
import { inspectGlb } from '../mesh/rules.js';
import { prepareCloud, prepareMesh } from '../render/index.js';
import type { Scene } from '../render/pool.js';
import { decodePly } from '../splat/ply.js';
import { servablePlyViolation } from '../splat/servable.js';
import type { AssetCall, AssetOpenCall, AssetReply } from './asset-protocol.js';

const port = parentPort;
if (!port) throw new Error('the asset worker must run in a worker thread');

async function open(call: AssetOpenCall): Promise<Scene> {
  if (call.kind === 'ply') {
    const violation = servablePlyViolation(call.bytes);
    if (violation) throw new Error(`not a valid PLY: ${violation}`);
    return prepareCloud(decodePly(call.bytes), { extent: call.extent });
  }
  const inspection = await inspectGlb(call.bytes, call.rules);
  if (inspection.fault) throw new Error(inspection.fault);
  return prepareMesh(await decodeGlb(call.bytes, call.rules.limits ?? DEFAULT_GLB_LIMITS), { extent: call.extent });
}

function work(call: AssetCall): Promise<unknown> {
  return call.type === 'inspect-glb' ? inspectGlb(call.bytes, call.rules) : open(call);
}

port.on('message', (call: AssetCall) => {
  work(call).then(
    (value) => port.postMessage({ type: 'result', id: call.id, ok: true, value } satisfies AssetReply),
    (err: Error) =>
      port.postMessage({ type: 'result', id: call.id, ok: false, error: String(err?.message ?? err).slice(0, 500) } satisfies AssetReply),
  );
});
port.postMessage({ type: 'ready' } satisfies AssetReply);
