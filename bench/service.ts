/** A fast3d service for a bench: its own process, from the sources, on a free loopback port. */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Starts `fast3d serve` with `config` (YAML lines, written to `dir`; the port is chosen by the system) and resolves
 * once /ping answers 200: listening is not ready, the stages must answer too.
 */
export async function startService(dir: string, config: string[]): Promise<{ url: string; child: ChildProcess }> {
  const path = join(dir, 'config.yaml');
  writeFileSync(path, [...config, 'log: { level: info, format: json }', ''].join('\n'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', path], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const m = /"port":(\d+)/.exec(buffered);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    child.stderr!.on('data', () => undefined);
    child.once('exit', (code) => reject(new Error(`service exited with ${code} before listening`)));
  });
  for (let i = 0; i < 400 && (await fetch(`${url}/ping`).catch(() => null))?.status !== 200; i++)
    await new Promise((r) => setTimeout(r, 50));
  return { url, child };
}
