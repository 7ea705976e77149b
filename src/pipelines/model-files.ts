/**
 * Model files as the backends that load them see them: a port. The weights module implements it with the one
 * readiness check of model files (the same as `npm run weights -- --check`), and compose.ts hands it to the
 * backends, so pipelines never import the weights module.
 */

/** The files one backend loads. */
export interface ModelFiles {
  /** Absolute paths, in the order they were asked for. */
  readonly paths: readonly string[];
  /** Paths that do not exist now: cheap and synchronous, for readiness on every /health. */
  missing(): string[];
  /** The full check before loading (sizes, and checksums when configured): what is wrong, or null. */
  problems(): Promise<string | null>;
}

export interface ModelStore {
  /** A configured model path, resolved against the models folder (absolute paths stay as they are). */
  resolve(path: string): string;
  files(paths: string[]): ModelFiles;
}
