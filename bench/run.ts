/**
 * `npm run bench [NAME ...]`: runs the benchmark modules (all, or the named ones). Each module in bench/ exports
 * `summary` and `run(): Promise<void>` and prints medians over several runs; register new ones below.
 */
interface Bench {
  summary: string;
  run(): Promise<void>;
}

const BENCHES: Record<string, () => Promise<Bench>> = {
  render: () => import('./render.js'),
};

async function main(names: string[]): Promise<number> {
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length) {
    process.stderr.write(`bench: unknown ${unknown.join(', ')} (known: ${Object.keys(BENCHES).join(', ')})\n`);
    return 2;
  }
  for (const name of names.length ? names : Object.keys(BENCHES)) {
    const bench = await BENCHES[name]();
    process.stdout.write(`== ${name}: ${bench.summary}\n`);
    await bench.run();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: Error) => { process.stderr.write(`bench: ${err.stack ?? err.message}\n`); process.exitCode = 1; },
);
