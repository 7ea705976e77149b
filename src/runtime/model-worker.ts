/**
 * A model thread's worker: loads one model (model-runner.ts's loadModel), then runs the calls it is sent, one
 * at a time. Results go back with their typed arrays transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { loadModel } from '../pipelines/model-runner.js';
import type { ModelMessage, ModelReply } from './model-protocol.js';

const port = parentPort;
if (!port) throw new Error('the model worker must run in a worker thread');

type Method = (...args: unknown[]) => Promise<unknown>;
let model: Record<string, unknown> | null = null;
/** The work in progress (the host sends one call at a time): a release waits for it. */
let inProgress: Promise<unknown> = Promise.resolve();

async function work(message: Exclude<ModelMessage, { type: 'release' }>): Promise<unknown> {
  if (message.type === 'load') {
    model = (await loadModel(message.kind, message.options)) as unknown as Record<string, unknown>;
    return null;
  }
  if (!model) throw new Error('model worker called before its model was loaded');
  const method = Object.hasOwn(model, message.method) && message.method !== 'release' ? model[message.method] : undefined;
  if (typeof method !== 'function') throw new Error(`the model has no method "${message.method}"`);
  return (method as Method).apply(model, message.args);
}

/** The buffers of a result's typed arrays (in arrays and plain objects too) that span their whole buffer. */
function buffersOf(value: unknown, into = new Set<ArrayBuffer>()): Set<ArrayBuffer> {
  if (ArrayBuffer.isView(value)) {
    if (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength && value.buffer instanceof ArrayBuffer)
      into.add(value.buffer);
  } else if (Array.isArray(value)) {
    for (const item of value) buffersOf(item, into);
  } else if (value && typeof value === 'object') {
    for (const item of Object.values(value)) buffersOf(item, into);
  }
  return into;
}

/**
 * Frees the sessions once the work in progress is over (an inference may still be pending inside
 * onnxruntime-node, whose run starts on a later turn), then ends the thread.
 */
async function release(): Promise<void> {
  await inProgress.catch(() => undefined);
  const loaded = model as { release?: () => Promise<void> } | null;
  model = null;
  try {
    await loaded?.release?.();
  } finally {
    process.exit(0);
  }
}

port.on('message', (message: ModelMessage) => {
  if (message.type === 'release') {
    void release();
    return;
  }
  const id = message.type === 'load' ? 0 : message.id;
  const done = work(message);
  inProgress = done;
  done.then(
    (value) => {
      const reply: ModelReply = { id, ok: true, value };
      try {
        port.postMessage(reply, [...buffersOf(value)]);
      } catch (err) {
        // A result that cannot be sent fails its call, not the thread.
        port.postMessage({ id, ok: false, error: `its result could not be sent: ${(err as Error).message}` } satisfies ModelReply);
      }
    },
    (err: Error) => {
      const reply: ModelReply = { id, ok: false, error: err?.message ?? String(err) };
      port.postMessage(reply);
    },
  );
});
