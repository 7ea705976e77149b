/** PLY encode, decode and the servable check on a 1M-Gaussian cloud (target: < 100 ms each). */
import { allocateCloud, GAUSSIAN_PROPERTIES } from '../src/splat/cloud.js';
import { decodePly, encodePly } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { report, timeMedian } from './stats.js';

const COUNT = 1_000_000;
const RUNS = 7;

const cloud = allocateCloud(COUNT);
for (const name of GAUSSIAN_PROPERTIES) {
  const column = cloud.columns[name];
  for (let i = 0; i < COUNT; i++) column[i] = Math.sin(i * 0.37 + name.length);
}
const bytes = encodePly(cloud);

process.stdout.write(`ply: 1,000,000 Gaussians (${(bytes.length / 1e6).toFixed(1)} MB), median of ${RUNS} runs\n`);
report('encode', await timeMedian(RUNS, () => encodePly(cloud)), 'ms', '< 100 ms');
report('decode', await timeMedian(RUNS, () => decodePly(bytes)), 'ms', '< 100 ms');
report('servable check (packer rules + finite scan)', await timeMedian(RUNS, () => servablePlyViolation(bytes)), 'ms');
