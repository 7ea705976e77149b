import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createFormats } from '../src/formats/registry.js';
import { glbRulesOf } from '../src/mesh/rules.js';
import { RenderPool } from '../src/render/index.js';
import { allocateCloud, GAUSSIAN_PROPERTIES, type GaussianCloud } from '../src/splat/cloud.js';
import { decodePly, encodePly, encodePlyInSlices, PlyFormatError, plyHeader } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { watchEventLoop } from './helpers/event-loop.js';
import { testConfig } from './helpers/fake-stages.js';
import { readPlyIndependently } from './helpers/independent-ply.js';

function fixture(name: string): Uint8Array {
  const path = new URL(`../../shared/fixtures/${name}`, import.meta.url);
  if (!existsSync(path)) throw new Error(`fixture ${name} not found at ${path.pathname}: the repository must sit beside shared/`);
  return new Uint8Array(readFileSync(path));
}

function randomCloud(count: number, seed = 1): GaussianCloud {
  const cloud = allocateCloud(count);
  let s = seed;
  for (const name of GAUSSIAN_PROPERTIES) {
    const column = cloud.columns[name];
    for (let i = 0; i < count; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      column[i] = (s / 2 ** 32) * 4 - 2;
    }
  }
  return cloud;
}

describe('PLY writer', () => {
  it('writes exactly the header the SPZ packer accepts', () => {
    const bytes = encodePly(randomCloud(3));
    const text = Buffer.from(bytes).toString('latin1');
    const header = text.slice(0, text.indexOf('end_header\n') + 11);
    expect(header).toBe(plyHeader(3));
    expect(header.split('\n').slice(0, 3)).toEqual(['ply', 'format binary_little_endian 1.0', 'element vertex 3']);
    expect(header).not.toMatch(/comment|obj_info|double|uchar/);
    expect(bytes.length).toBe(header.length + 3 * 14 * 4);
  });

  it('round-trips every value bit for bit, independently read back', () => {
    for (const count of [1, 2, 3, 4, 1001]) {
      const cloud = randomCloud(count, count);
      const bytes = encodePly(cloud);
      const independent = readPlyIndependently(bytes);
      const decoded = decodePly(bytes);
      for (const name of GAUSSIAN_PROPERTIES) {
        expect(decoded.columns[name]).toEqual(cloud.columns[name]);
        for (let i = 0; i < count; i += 97) expect(independent.get(name, i)).toBe(cloud.columns[name][i]);
      }
    }
  });
});

describe('PLY writer in slices', () => {
  it("writes encodePly's bytes, wherever the slices end", async () => {
    for (const count of [0, 1, 5, 16384, 16385, 40000]) {
      const cloud = randomCloud(count, count + 3);
      const whole = encodePly(cloud);
      for (const slice of [7, 16384]) {
        let waits = 0;
        const sliced = await encodePlyInSlices(
          cloud,
          async () => {
            waits++;
          },
          slice,
        );
        expect(Buffer.compare(sliced, whole)).toBe(0);
        expect(waits).toBe(Math.ceil(count / slice));
      }
    }
  });

  it('leaves the event loop turning while eight clouds of 240k Gaussians are encoded at once', async () => {
    const formats = createFormats({ pool: new RenderPool(0), mesh: glbRulesOf(testConfig().pipeline) });
    const clouds = Array.from({ length: 8 }, (_, i) => randomCloud(240_000, i + 1));
    const env = { turntable: testConfig().render };
    const loop = watchEventLoop();
    const start = performance.now();
    let longest: number;
    let took: number;
    let encoded: Uint8Array[];
    try {
      encoded = await Promise.all(clouds.map((cloud) => formats.ply.encode({ cloud }, { format: 'ply' }, env)));
    } finally {
      longest = loop.stop();
      took = performance.now() - start;
    }
    expect(Buffer.compare(encoded[5], encodePly(clouds[5]))).toBe(0);
    // Written whole, each encode holds the loop for all of its 13 MB and the eight run back to back: nearly all
    // of the time. In slices taking turns, the loop is held for a slice at a time.
    expect(longest).toBeLessThan(took / 3);
  });
});

describe('PLY reader', () => {
  it('reads the subnet fixtures', () => {
    expect(decodePly(fixture('hamburger.ply')).count).toBe(52_709);
    const robocop = decodePly(fixture('robocop.ply'));
    expect(robocop.count).toBe(267_776);
    expect(Number.isFinite(robocop.columns.opacity[1234])).toBe(true);
  });

  it('reads properties by name in any order, ignoring extra ones, and other scalar types', () => {
    const names = [
      'nx',
      'rot_3',
      'x',
      'y',
      'z',
      'f_dc_0',
      'f_dc_1',
      'f_dc_2',
      'opacity',
      'scale_0',
      'scale_1',
      'scale_2',
      'rot_0',
      'rot_1',
      'rot_2',
    ];
    const types = names.map((n) => (n === 'x' ? 'double' : n === 'nx' ? 'uchar' : 'float'));
    const header = `ply\nformat binary_little_endian 1.0\ncomment made by hand\nelement vertex 2\n${names.map((n, i) => `property ${types[i]} ${n}\n`).join('')}element face 0\nproperty list uchar int vertex_indices\nend_header\n`;
    const stride = types.reduce((s, t) => s + (t === 'double' ? 8 : t === 'uchar' ? 1 : 4), 0);
    const body = Buffer.alloc(2 * stride);
    for (let v = 0; v < 2; v++) {
      let o = v * stride;
      names.forEach((_name, i) => {
        const value = v * 100 + i;
        if (types[i] === 'double') {
          body.writeDoubleLE(value + 0.25, o);
          o += 8;
        } else if (types[i] === 'uchar') {
          body.writeUInt8(value % 256, o);
          o += 1;
        } else {
          body.writeFloatLE(value, o);
          o += 4;
        }
      });
    }
    const cloud = decodePly(new Uint8Array(Buffer.concat([Buffer.from(header, 'latin1'), body])));
    expect(cloud.count).toBe(2);
    expect(Array.from(cloud.columns.x)).toEqual([2.25, 102.25]);
    expect(Array.from(cloud.columns.rot_3)).toEqual([1, 101]);
    expect(Array.from(cloud.columns.rot_2)).toEqual([14, 114]);
  });

  it('says what is wrong with a bad file', () => {
    const good = encodePly(randomCloud(2));
    const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');
    const bad = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
    expect(() => decodePly(bad(text(good).replace('binary_little_endian', 'ascii')))).toThrow(/format "ascii 1.0" is not supported/);
    expect(() => decodePly(bad(text(good).replace('property float opacity\n', '')))).toThrow(/missing properties: opacity/);
    expect(() => decodePly(good.subarray(0, good.length - 4))).toThrow(PlyFormatError);
    expect(() => decodePly(bad('hello'))).toThrow(/no end_header/);
  });
});

describe("servable PLY rules (the packer's exact checks)", () => {
  const good = encodePly(randomCloud(5));
  const withHeader = (from: string, to: string) => {
    const text = Buffer.from(good).toString('latin1').replace(from, to);
    return new Uint8Array(Buffer.from(text, 'latin1'));
  };

  it('accepts what the writer writes and the subnet fixtures', () => {
    expect(servablePlyViolation(good)).toBeNull();
    expect(servablePlyViolation(fixture('hamburger.ply'))).toBeNull();
  });

  it('refuses every broken rule', () => {
    expect(servablePlyViolation(withHeader('ply\n', 'PLY\n'))).toMatch(/line 1/);
    expect(servablePlyViolation(withHeader('binary_little_endian', 'binary_big_endian'))).toMatch(/line 2/);
    expect(servablePlyViolation(withHeader('element vertex 5\n', 'element vertex 5\ncomment hi\n'))).toMatch(
      /does not start with "property float "/,
    );
    expect(servablePlyViolation(withHeader('property float x\n', 'property double x\n'))).toMatch(/property float/);
    expect(servablePlyViolation(withHeader('property float opacity\n', 'property float alpha\n'))).toMatch(/"opacity" is missing/);
    expect(servablePlyViolation(withHeader('property float rot_3\n', 'property float rot_2\n'))).toMatch(/"rot_2" is declared twice/);
    expect(servablePlyViolation(good.subarray(0, good.length - 1))).toMatch(/body holds/);
    expect(servablePlyViolation(new Uint8Array(0))).toMatch(/end_header/);
    const zero = new TextEncoder().encode(plyHeader(0));
    expect(servablePlyViolation(zero)).toMatch(/outside 1\.\.10485760/);
  });

  it('refuses non-finite values', () => {
    const cloud = randomCloud(5);
    cloud.columns.scale_1[3] = NaN;
    expect(servablePlyViolation(encodePly(cloud))).toMatch(/non-finite/);
    cloud.columns.scale_1[3] = Infinity;
    expect(servablePlyViolation(encodePly(cloud))).toMatch(/non-finite/);
  });
});
