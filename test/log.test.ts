import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { prettyLogs } from '../src/runtime/log.js';

describe('log format', () => {
  it('is readable on a terminal and JSON otherwise, unless log.format says', () => {
    expect(prettyLogs('auto', true)).toBe(true);
    expect(prettyLogs('auto', false)).toBe(false);
    expect(prettyLogs('json', true)).toBe(false);
    expect(prettyLogs('pretty', false)).toBe(true);
  });

  it('writes readable lines through pino-pretty when asked', async () => {
    const script = `import { createLogger } from './src/runtime/log.ts';
      createLogger('info', undefined, 'pretty').info({ port: 8093 }, 'listening');`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      timeout: 30_000,
    });
    expect(stdout).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO( \(\d+\))?: listening \{"port":8093\}\n$/);
  });
});
