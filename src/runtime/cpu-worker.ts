/**
 * Worker thread of the CPU pool: builds the CPU preview backends from the config once, then runs the stage calls
 * it is sent, each under a context carrying the job's settings, and the artefact work by name. Results go back
 * transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { runArtefactWork } from '../formats/artefact-work.js';
import { standaloneContext, type JobSettings } from '../pipelines/context.js';
import { inflateImageTo3d, keyingMatting, previewTextToImage } from '../pipelines/preview-backends.js';
import type { ImageTo3d, Matting, TextToImage } from '../pipelines/stages.js';
import type { RgbaImage } from '../image/rgba.js';
import type { CpuCall, CpuInit, CpuMessage, CpuReply } from './cpu-protocol.js';
import { transferablesOf } from './transfer.js';

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
    case 'artefact':
      return runArtefactWork(message.name, message.args);
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
      port.postMessage(reply, transferablesOf(value));
    },
    (err: Error) => {
      const reply: CpuReply = { id: message.id, ok: false, error: err.message, name: err.name };
      port.postMessage(reply);
    },
  );
});
