/**
 * An independent reading of the subnet's PLY rules, written from the contract text rather than through the
 * project's own reader, so that a bug shared by our writer and reader cannot hide here.
 */
export interface IndependentPly {
  count: number;
  names: string[];
  /** Value of property `name` for Gaussian `i`. */
  get(name: string, i: number): number;
}

export function readPlyIndependently(bytes: Uint8Array): IndependentPly {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4096)).toString('latin1');
  const end = text.indexOf('end_header\n');
  if (end < 0) throw new Error('no end_header');
  const lines = text.slice(0, end).split('\n');
  lines.pop(); // the empty string after the last property line
  if (lines[0] !== 'ply') throw new Error(`line 1 is ${JSON.stringify(lines[0])}`);
  if (lines[1] !== 'format binary_little_endian 1.0') throw new Error(`line 2 is ${JSON.stringify(lines[1])}`);
  const m = /^element vertex (\d+)$/.exec(lines[2]);
  if (!m) throw new Error(`line 3 is ${JSON.stringify(lines[2])}`);
  const count = Number(m[1]);
  if (!(count > 0 && count <= 10_485_760)) throw new Error(`count ${count}`);
  const names = lines.slice(3).map((line) => {
    if (!line.startsWith('property float ')) throw new Error(`bad header line ${JSON.stringify(line)}`);
    return line.slice('property float '.length);
  });
  for (const required of [
    'x',
    'y',
    'z',
    'scale_0',
    'scale_1',
    'scale_2',
    'rot_0',
    'rot_1',
    'rot_2',
    'rot_3',
    'opacity',
    'f_dc_0',
    'f_dc_1',
    'f_dc_2',
  ]) {
    if (!names.includes(required)) throw new Error(`missing ${required}`);
  }
  const bodyStart = end + 'end_header\n'.length;
  if (bytes.length - bodyStart !== count * names.length * 4) throw new Error('body size does not match the header');
  const view = new DataView(bytes.buffer, bytes.byteOffset + bodyStart);
  const index = new Map(names.map((n, i) => [n, i]));
  return {
    count,
    names,
    get: (name, i) => view.getFloat32((i * names.length + index.get(name)!) * 4, true),
  };
}

export interface GateFigures {
  count: number;
  transparentShare: number;
  allIdentity: boolean;
  centroid: [number, number, number];
  extent: [number, number, number];
}

/** The validator's structural gate figures, computed with plain arithmetic. */
export function gateFigures(ply: IndependentPly): GateFigures {
  let transparent = 0;
  let allIdentity = true;
  const sum = [0, 0, 0];
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < ply.count; i++) {
    if (1 / (1 + Math.exp(-ply.get('opacity', i))) < 1e-3) transparent++;
    if (!(ply.get('rot_0', i) === 1 && ply.get('rot_1', i) === 0 && ply.get('rot_2', i) === 0 && ply.get('rot_3', i) === 0))
      allIdentity = false;
    ['x', 'y', 'z'].forEach((axis, a) => {
      const v = ply.get(axis, i);
      sum[a] += v;
      if (v < min[a]) min[a] = v;
      if (v > max[a]) max[a] = v;
    });
  }
  return {
    count: ply.count,
    transparentShare: transparent / ply.count,
    allIdentity,
    centroid: sum.map((s) => s / ply.count) as [number, number, number],
    extent: [0, 1, 2].map((a) => max[a] - min[a]) as [number, number, number],
  };
}
