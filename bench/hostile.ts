/**
 * Hostile assets against a running service: the worst files of the hardening work (a node cycle, a 60,000-node
 * chain, JSON nested 10^5 deep, an accessor of 3e7 vertices with no bytes, eight textures on one 8192^2 PNG,
 * 5,000 meshes) sent as base64 to MCP's check_asset and render_views. A preview service runs in a child process;
 * for each file and tool it prints the median time of the refusal (or answer), the service's peak RSS above its
 * resident size before the call (Linux's VmHWM, reset before each call), and the service's longest event-loop
 * stall during the call (its /metrics), each against the targets: under 2 s, under 300 MB, under 100 ms.
 *
 *   npm run bench -- hostile        (BENCH_RUNS=3 by default)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { deepJsonGlb, manyMeshesGlb, nodeChainGlb, nodeCycleGlb, texturedGlb, unbackedAccessorGlb } from '../test/helpers/hostile-glb.js';
import { startService } from './service.js';
import { median } from './stats.js';

const TARGETS = { seconds: 2, mb: 300, stallMs: 100 };

const SERVICE_CONFIG = ['server: { host: 127.0.0.1, port: 0, body_limit_mb: 40 }', 'cache: { enabled: false }', 'render: { threads: 1 }'];

/** One MCP tool call over /mcp (stateless: no session), its result's text. */
async function callTool(url: string, name: string, args: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
  });
  const text = await response.text();
  const data = text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as { result?: { content: { type: string; text?: string }[] }; error?: { message: string } });
  const last = data.at(-1);
  if (!last) return `HTTP ${response.status}: ${text.slice(0, 120)}`;
  if (last.error) return `error: ${last.error.message}`;
  return last
    .result!.content.filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join(' ');
}

function status(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The peak RSS counts from here (Linux: writing 5 to clear_refs resets VmHWM). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function stallMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^fast3d_event_loop_stall_max_seconds ([\d.e+-]+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : NaN;
}

async function main(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  console.log(
    `machine: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const files: [string, Uint8Array][] = [
    ['node cycle (2 nodes, no scene)', nodeCycleGlb()],
    ['node chain of 60,000', nodeChainGlb(60_000)],
    ['node chain of 12,000 outside any scene', nodeChainGlb(12_000, false)],
    ['JSON nested 10^5 deep', deepJsonGlb(100_000)],
    ['accessor of 3e7 vertices, no bytes', unbackedAccessorGlb(30_000_000)],
    ['8 textures on one 8192^2 PNG', await texturedGlb(8, 8192)],
    ['5,000 meshes', manyMeshesGlb(5000)],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-bench-hostile-'));
  const { url, child } = await startService(dir, SERVICE_CONFIG);
  const pid = child.pid!;
  try {
    // Warm-up: the asset worker and the render worker started, so the first file pays no start-up.
    await callTool(url, 'render_views', { glb_base64: Buffer.from(nodeCycleGlb()).toString('base64'), count: 1, size: 32 });
    console.log(
      `hostile assets: MCP check_asset and render_views (4 views at 256 px), ${runs} runs each; targets: < ${TARGETS.seconds} s, < ${TARGETS.mb} MB above the RSS before the call, stall < ${TARGETS.stallMs} ms`,
    );
    console.log(
      `  ${'file'.padEnd(40)} ${'bytes'.padStart(9)} ${'tool'.padEnd(13)} ${'median s'.padStart(9)} ${'peak MB'.padStart(8)} ${'stall ms'.padStart(9)}  answer`,
    );
    let missed = 0;
    for (const [name, bytes] of files) {
      const b64 = Buffer.from(bytes).toString('base64');
      for (const tool of ['check_asset', 'render_views'] as const) {
        const times: number[] = [],
          peaks: number[] = [],
          stalls: number[] = [];
        let answer = '';
        for (let run = 0; run < runs; run++) {
          await stallMs(url); // a fresh stall window
          const before = status(pid, 'VmRSS');
          resetPeak(pid);
          const start = performance.now();
          answer = await callTool(url, tool, tool === 'render_views' ? { glb_base64: b64, count: 4, size: 256 } : { glb_base64: b64 });
          times.push((performance.now() - start) / 1000);
          peaks.push((status(pid, 'VmHWM') - before) / 1e6);
          stalls.push(await stallMs(url));
        }
        const [t, peak, stall] = [median(times), Math.max(...peaks), Math.max(...stalls)];
        const met = t < TARGETS.seconds && peak < TARGETS.mb && stall < TARGETS.stallMs;
        if (!met) missed++;
        console.log(
          `  ${name.padEnd(40)} ${String(bytes.length).padStart(9)} ${tool.padEnd(13)} ${t.toFixed(2).padStart(9)} ${peak.toFixed(0).padStart(8)} ${stall.toFixed(0).padStart(9)}  ${met ? '' : 'MISSED '}${answer.split('\n')[0].slice(0, 90)}`,
        );
      }
    }
    const alive = (await fetch(`${url}/ping`)).status;
    console.log(`  service after all files: /ping ${alive}; ${missed ? `${missed} row(s) MISSED a target` : 'every target MET'}`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
