/**
 * The ISNet session, in the thread that owns it (see model-runner.ts): the ONNX file through onnxruntime-node,
 * and one prediction per call. The pre- and post-processing around it stay in isnet.ts.
 */
import * as ort from 'onnxruntime-node';

export interface IsnetModelOptions {
  path: string;
  executionProvider: 'cpu' | 'cuda';
  /** onnxruntime intra-op threads (0: its default). */
  threads: number;
  /** Side of the model's square input. */
  inputSize: number;
}

export interface IsnetModel {
  /** Channel 0 of the first output (size x size floats) for one 1x3xSxS NCHW float32 input. */
  predict(input: Float32Array): Promise<Float32Array>;
  release(): Promise<void>;
}

export async function loadIsnetModel(options: IsnetModelOptions): Promise<IsnetModel> {
  const { path, executionProvider, threads, inputSize: size } = options;
  const session = await ort.InferenceSession.create(path, {
    executionProviders: [executionProvider],
    graphOptimizationLevel: 'all',
    ...(threads ? { intraOpNumThreads: threads } : {}),
  });
  return {
    async predict(input) {
      const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, size, size]) };
      const outputs = await session.run(feeds);
      try {
        const first = outputs[session.outputNames[0]].data as Float32Array;
        if (first.length < size * size)
          throw new Error(`ISNet's first output holds ${first.length} values, expected at least ${size * size}`);
        // A copy of its own: only channel 0 travels back, and the session's buffers are freed below.
        return first.slice(0, size * size);
      } finally {
        for (const name of session.outputNames) outputs[name]?.dispose?.();
      }
    },
    release: () => session.release(),
  };
}
