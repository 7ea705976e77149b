/**
 * Model threads: each model runs in a worker thread of its own, off the event loop. A thread that dies fails only
 * the call it was running: the calls queued behind it and another model's calls complete, the former on a fresh
 * thread that loads the model again. An aborted call releases its caller at once and leaves the calls after it
 * their own answers.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningModel } from '../src/pipelines/model-runner.js';
import { workerModels } from '../src/runtime/model-host.js';
import { heavyIsnetOnnx, tinyIsnetOnnx } from './helpers/models.js';

/**
 * Every worker thread started, in order. `dieOnNextCall` makes a thread die with the next call in hand, as one
 * that crashes mid-call does (it ends before the call reaches it: a thread terminated inside an inference would
 * take the test process down with it, which is why the host never does that).
 */
type RecordedWorker = Worker & { dieOnNextCall: boolean };
const started = vi.hoisted(() => [] as RecordedWorker[]);
vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  class Recorded extends real.Worker {
    dieOnNextCall = false;
    constructor(...args: ConstructorParameters<typeof real.Worker>) {
      super(...args);
      started.push(this);
    }
    override postMessage(message: unknown, transfer?: readonly import('node:worker_threads').TransferListItem[]): void {
      if (this.dieOnNextCall && (message as { type?: string }).type === 'call') {
        void this.terminate();
        return;
      }
      super.postMessage(message, transfer);
    }
  }
  return { ...real, Worker: Recorded };
});

const SIDE = 1024;
/** An ISNet input of one value everywhere: the test models answer sigmoid(8 * value) at every pixel. */
const input = (value: number) => new Float32Array(3 * SIDE * SIDE).fill(value);
const expected = (value: number) => 1 / (1 + Math.exp(-8 * value));

describe('model threads', () => {
  let dir: string;
  let heavy: string;
  let tiny: string;
  const runner = workerModels();
  const load = async (path: string): Promise<{ model: RunningModel<'isnet'>; thread: RecordedWorker }> => {
    const before = started.length;
    const model = await runner.load('isnet', { path, executionProvider: 'cpu', threads: 1, inputSize: SIDE });
    expect(started.length).toBe(before + 1);
    return { model, thread: started[before] };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fast3d-model-host-'));
    heavy = join(dir, 'heavy.onnx');
    tiny = join(dir, 'tiny.onnx');
    await writeFile(heavy, heavyIsnetOnnx(8, 20));
    await writeFile(tiny, tinyIsnetOnnx(8));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("hands the input over and answers from the model's own thread", async () => {
    const { model } = await load(tiny);
    const value = input(0.25);
    const prediction = await model.call('predict', [value], { transfer: [value.buffer] });
    expect(value.length).toBe(0); // transferred, not copied
    expect(prediction).toHaveLength(SIDE * SIDE);
    expect(prediction[0]).toBeCloseTo(expected(0.25), 5);
    await model.release();
    await expect(model.call('predict', [input(0.25)])).rejects.toThrow('the isnet model was released');
  });

  it('a thread that dies fails only the call it was running; the calls queued behind it and other models complete', async () => {
    const a = await load(tiny);
    const b = await load(tiny);
    const before = started.length;
    a.thread.dieOnNextCall = true;
    const running = a.model.call('predict', [input(0.1)]);
    const queued = a.model.call('predict', [input(0.3)]);
    const other = b.model.call('predict', [input(0.2)]);

    await expect(running).rejects.toThrow(/^the isnet model's thread failed: exited with code 1$/);
    expect((await queued)[0]).toBeCloseTo(expected(0.3), 5);
    expect((await other)[0]).toBeCloseTo(expected(0.2), 5);
    // The queued call ran on a fresh thread, which loaded the model again; it goes on serving.
    expect(started.length).toBe(before + 1);
    expect((await a.model.call('predict', [input(-0.2)]))[0]).toBeCloseTo(expected(-0.2), 5);
    await Promise.all([a.model.release(), b.model.release()]);
  });

  it('an aborted call rejects at once, queued or running, and the next call gets its own answer', async () => {
    const { model } = await load(heavy);
    const runningAbort = new AbortController();
    const queuedAbort = new AbortController();
    const first = model.call('predict', [input(0.1)], { signal: runningAbort.signal });
    const second = model.call('predict', [input(0.2)], { signal: queuedAbort.signal });
    const third = model.call('predict', [input(0.3)]);
    let firstSettled = false;
    let thirdSettled = false;
    first.then(
      () => {
        firstSettled = true;
      },
      () => {
        firstSettled = true;
      },
    );
    third.then(
      () => {
        thirdSettled = true;
      },
      () => {
        thirdSettled = true;
      },
    );

    queuedAbort.abort(new Error('queued call cancelled'));
    await expect(second).rejects.toThrow('queued call cancelled');
    expect(firstSettled).toBe(false); // still running: the queued call did not wait for it

    await new Promise((resolve) => setTimeout(resolve, 50));
    runningAbort.abort(new Error('running call cancelled'));
    await expect(first).rejects.toThrow('running call cancelled');
    expect(thirdSettled).toBe(false); // released before the inference it was waiting for ended

    // The running inference's late answer is dropped: the next call gets its own.
    expect((await third)[0]).toBeCloseTo(expected(0.3), 5);
    const already = AbortSignal.abort(new Error('gone before the call'));
    await expect(model.call('predict', [input(0.4)], { signal: already })).rejects.toThrow('gone before the call');
    await model.release();
  });

  it('released inside an inference, lets it end before the thread does (killing it there would abort the process)', async () => {
    const { model, thread } = await load(heavy);
    const running = model.call('predict', [input(0.1)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const released = model.release();
    await expect(running).rejects.toThrow('the isnet model was released');
    await released;
    expect(thread.threadId).toBe(-1);
  });

  it("refuses to load a file that is not a model, with onnxruntime's reason, and keeps no thread", async () => {
    const path = join(dir, 'garbage.onnx');
    await writeFile(path, 'not an onnx file');
    const before = started.length;
    await expect(runner.load('isnet', { path, executionProvider: 'cpu', threads: 1, inputSize: SIDE })).rejects.toThrow(/\S/);
    const thread = started[before];
    await new Promise<void>((resolve) => (thread.threadId < 0 ? resolve() : thread.once('exit', () => resolve())));
    expect(thread.threadId).toBe(-1);
  });
});
