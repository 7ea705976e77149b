/**
 * Worker thread of the CPU pool: builds the CPU preview backends from the config once, then runs the stage calls
 * it is sent, each under a context carrying the job's settings. Results go back transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { standaloneContext, type JobSettings } from '../pipelines/context.js';
import { inflateImageTo3d, keyingMatting, previewTextToImage } from '../pipelines/preview-backends.js';
import type { ImageTo3d, Matting, TextToImage } from '../pipelines/stages.js';
import type { RgbaImage } from '../image/rgba.js';
import type { CpuCall, CpuFormCall, CpuInit, CpuReply } from './cpu-protocol.js';

const port = parentPort;
if (!port) throw new Error('the CPU worker must run in a worker thread');

let stages: { textToImage: TextToImage; matting: Matting; imageTo3d: ImageTo3d } | null = null;

function init(config: JobSettings): void {
  stages = { textToImage: previewTextToImage(config), matting: keyingMatting(config), imageTo3d: inflateImageTo3d(config) };
}

async function call(message: CpuCall): Promise<unknown> {
  if (!stages) throw new Error('CPU worker called before init');
  const ctx = standaloneContext(message.settings, { id: `cpu-${message.id}` });
  switch (message.stage) {
    case 'textToImage':
      return stages.textToImage.generate(message.args[0] as string, message.args[1] as number, ctx);
    case 'matting':
      return stages.matting.matte(message.args[0] as { image: RgbaImage; fromUser: boolean }, ctx);
    case 'imageTo3d':
      return stages.imageTo3d.generate(message.args[0] as RgbaImage, message.args[1] as number, ctx);
  }
}

/** The buffers of a result, handed over rather than copied (the worker keeps nothing of it). */
function buffersOf(value: unknown): ArrayBuffer[] {
  if (!value || typeof value !== 'object') return [];
  const views: ArrayBufferView[] = 'columns' in value ? Object.values((value as { columns: Record<string, Float32Array> }).columns)
    : 'data' in value ? [(value as RgbaImage).data] : [];
  const buffers = new Set<ArrayBuffer>();
  // Only views that span their whole buffer: a view into a shared slab must be copied.
  for (const v of views) if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) buffers.add(v.buffer as ArrayBuffer);
  return [...buffers];
}

function parseForm(body: ArrayBuffer): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(new TextDecoder().decode(body))) {
    const seen = fields[name];
    fields[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return fields;
}

port.on('message', (message: CpuInit | CpuCall | CpuFormCall) => {
  if (message.type === 'init') {
    init(message.settings);
    return;
  }
  const work = message.type === 'form' ? Promise.resolve().then(() => parseForm(message.body)) : call(message);
  work.then(
    (value) => {
      const reply: CpuReply = { id: message.id, ok: true, value };
      port.postMessage(reply, buffersOf(value));
    },
    (err: Error) => {
      const reply: CpuReply = { id: message.id, ok: false, error: err.message };
      port.postMessage(reply);
    },
  );
});
