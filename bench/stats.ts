/** Small helpers shared by the benchmark scripts: timing medians and aligned output. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs `work` `runs` times after one warm-up and returns the median wall time in ms. */
export async function timeMedian(runs: number, work: () => unknown): Promise<number> {
  await work();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  return median(times);
}

export function report(name: string, value: number, unit: string, target?: string): void {
  const figure = value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  process.stdout.write(`  ${name.padEnd(58)} ${figure.padStart(9)} ${unit.padEnd(6)}${target ? `  (target ${target})` : ''}\n`);
}
