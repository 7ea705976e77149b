/** The model-file port of the backends (pipelines/model-files.ts), over the weights folder and its check. */
import type { ModelFiles, ModelStore } from '../pipelines/model-files.js';
import { checkFiles, describeProblems, expectedFiles, missingPaths, modelPath, type VerifyMode } from './check.js';

export function weightsStore(dir: string, verify: VerifyMode): ModelStore {
  return {
    resolve: (path) => modelPath(dir, path),
    files(paths): ModelFiles {
      const expected = expectedFiles(dir, paths);
      return {
        paths: expected.map((f) => f.path),
        missing: () => missingPaths(expected),
        problems: async () => describeProblems(await checkFiles(expected, { dir, verify })),
      };
    },
  };
}
