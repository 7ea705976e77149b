/**
 * Service processes for tests of several nodes: `fast3d serve --role ROLE` on a config the test writes, on a free
 * loopback port, its JSON log kept. `stop` ends it (SIGTERM, or SIGKILL for a node that dies).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface TestNode {
  url: string;
  child: ChildProcess;
  /** Everything the node has logged so far. */
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a node on `config` (merged over a small preview config) and waits until it listens. */
export async function startNode(
  config: Record<string, unknown>,
  role: 'all' | 'api' | 'worker',
  env: NodeJS.ProcessEnv = {},
): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-node-'));
  const path = join(dir, 'config.yaml');
  writeFileSync(
    path,
    stringify({ log: { level: 'info', format: 'json' }, ...config, server: { host: '127.0.0.1', port: 0, ...(config.server as object) } }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', path, '--role', role], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not listen within 60 s:\n${out.slice(-2000)}`)), 60_000);
    const check = () => {
      const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before listening:\n${out.slice(-2000)}`));
    });
  });
  return {
    url,
    child,
    log: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

/** Polls `url` until it answers 200 (a node whose stages are loading answers 503). */
export async function untilReady(url: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const status = await fetch(`${url}/health`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} was not ready within ${ms} ms`);
}
