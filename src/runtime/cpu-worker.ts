/**
 * Worker thread of the CPU pool: builds the CPU preview backends from the config once, then runs the stage calls
 * it is sent, each under a context carrying the job's settings. Results go back transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { decodeGlb, encodeGlb } from '../mesh/glb.js';
import { inspectGlb } from '../mesh/rules.js';
import { standaloneContext, type JobSettings } from '../pipelines/context.js';
import { inflateImageTo3d, keyingMatting, previewTextToImage } from '../pipelines/preview-backends.js';
import type { CloudAndMesh, ImageTo3d, Matting, TextToImage } from '../pipelines/stages.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import type { GaussianCloud } from '../splat/cloud.js';
import type { RgbaImage } from '../image/rgba.js';
import type { CpuCall, CpuInit, CpuMessage, CpuReply } from './cpu-protocol.js';

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
    case 'imageTo3dWithMesh':
      if (!stages.imageTo3d.generateWithMesh) throw new Error(`image-to-3d backend ${stages.imageTo3d.name} makes no meshes`);
      return stages.imageTo3d.generateWithMesh(message.args[0] as RgbaImage, message.args[1] as number, ctx);
  }
}

/**
 * The typed arrays of a result: an image's pixels, a cloud's columns, a mesh's arrays (and texture), a cloud and
 * mesh's both.
 */
function viewsOf(value: unknown): ArrayBufferView[] {
  if (!value || typeof value !== 'object') return [];
  if (value instanceof Uint8Array) return [value];
  if ('columns' in value) return Object.values((value as GaussianCloud).columns);
  if ('data' in value) return [(value as RgbaImage).data];
  if ('positions' in value && 'indices' in value) {
    const mesh = value as TriangleMesh;
    const arrays: (ArrayBufferView | undefined)[] = [mesh.positions, mesh.indices, mesh.colours, mesh.uvs, mesh.texture?.data];
    return arrays.filter((a): a is ArrayBufferView => a !== undefined);
  }
  if ('cloud' in value && 'mesh' in value) {
    const { cloud, mesh } = value as CloudAndMesh;
    return [...viewsOf(cloud), ...viewsOf(mesh)];
  }
  return [];
}

/** The buffers of a result, handed over rather than copied (the worker keeps nothing of it). */
function buffersOf(value: unknown): ArrayBuffer[] {
  const views = viewsOf(value);
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

function work(message: CpuMessage): Promise<unknown> {
  switch (message.type) {
    case 'call':
      return call(message);
    case 'form':
      return Promise.resolve().then(() => parseForm(message.body));
    case 'glb-encode':
      return encodeGlb(message.mesh);
    case 'glb-inspect':
      return inspectGlb(message.bytes, message.rules);
    case 'glb-decode':
      return decodeGlb(message.bytes, message.limits);
  }
}

port.on('message', (message: CpuInit | CpuMessage) => {
  if (message.type === 'init') {
    init(message.settings);
    return;
  }
  const done = work(message);
  done.then(
    (value) => {
      const reply: CpuReply = { id: message.id, ok: true, value };
      port.postMessage(reply, buffersOf(value));
    },
    (err: Error) => {
      const reply: CpuReply = { id: message.id, ok: false, error: err.message, name: err.name };
      port.postMessage(reply);
    },
  );
});
