import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig, parseConfig } from '../src/config/load.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function yamlFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-config-'));
  dirs.push(dir);
  const path = join(dir, 'config.yaml');
  writeFileSync(path, text);
  return path;
}

describe('config', () => {
  it('has a default and a one-line description for every key', () => {
    const rows = describeConfig();
    expect(rows.length).toBeGreaterThan(20);
    for (const row of rows) {
      expect(row.default, row.key).not.toBeUndefined();
      expect(row.description, row.key).toMatch(/^[A-Z].{10,}\.$/);
      expect(row.description, row.key).not.toMatch(/\n/);
    }
  });

  it('loads every shipped config file', () => {
    const dir = new URL('../configs/', import.meta.url).pathname;
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files).toContain('preview.yaml');
    for (const file of files) expect(() => loadConfig({ path: join(dir, file), env: {} }), file).not.toThrow();
  });

  it('rejects a bad value naming the key path and the reason', () => {
    const path = yamlFile('server:\n  port: "eighty"\npipeline:\n  retries: -1\n');
    expect(() => loadConfig({ path, env: {} })).toThrow(ConfigError);
    try {
      loadConfig({ path, env: {} });
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toMatch(/server\.port: .*expected number/i);
      expect(message).toMatch(/pipeline\.retries: .*>=0/i);
    }
  });

  it('rejects unknown keys, so typos do not pass silently', () => {
    expect(() => parseConfig({ matting: { margn: 0.1 } })).toThrow(/matting\.margn: unknown key/);
    expect(() => parseConfig({ sever: {} })).toThrow(/sever: unknown key/);
  });

  it('rejects a frame change that is not a proper rotation, naming the key', () => {
    expect(() => parseConfig({ contract: { image_file_rotation: [1, 0, 0, 0, 1, 0, 0, 0, -1] } })).toThrow(
      /contract\.image_file_rotation: .*is a reflection/,
    );
    expect(() => parseConfig({ contract: { image_file_rotation: [2, 0, 0, 0, 1, 0, 0, 0, 1] } })).toThrow(
      /contract\.image_file_rotation: .*not a rotation matrix/,
    );
    expect(parseConfig({ contract: { image_file_rotation: [1, 0, 0, 0, 0, -1, 0, 1, 0] } }).contract.image_file_rotation).toHaveLength(9);
  });

  it('rejects an unknown backend with the choices', () => {
    expect(() => parseConfig({ image_to_3d: { backend: 'magic' } })).toThrow(/image_to_3d\.backend: .*"inflate"/);
  });

  it('says when the file is missing or not YAML', () => {
    expect(() => loadConfig({ path: '/nonexistent/fast3d.yaml', env: {} })).toThrow(/cannot read config file \/nonexistent\/fast3d.yaml/);
    expect(() => loadConfig({ path: yamlFile('server: [1, 2\n'), env: {} })).toThrow(/is not valid YAML/);
  });

  it('lets PORT, HOST and FAST3D_CONFIG override', () => {
    const path = yamlFile('server:\n  port: 9000\n  host: 127.0.0.1\n');
    expect(loadConfig({ env: { FAST3D_CONFIG: path } }).server.port).toBe(9000);
    const config = loadConfig({ env: { FAST3D_CONFIG: path, PORT: '8123', HOST: '0.0.0.0' } });
    expect(config.server).toMatchObject({ port: 8123, host: '0.0.0.0' });
    expect(loadConfig({ env: {} }).server.port).toBe(8093);
  });

  it('blames the environment variable, not the config file, for a bad PORT', () => {
    const path = yamlFile('server:\n  port: 9000\n');
    for (const bad of ['abc', '80.5', '-1', '70000']) {
      let message = '';
      try {
        loadConfig({ path, env: { PORT: bad } });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toBe(`environment variable PORT must be a port number from 0 to 65535, got "${bad}"`);
    }
  });
});

describe('presets in the config', () => {
  it("resolves balanced to exactly the config's sections, and the others on top of them", async () => {
    const { presetsOf } = await import('../src/pipelines/presets.js');
    const { configSettings } = await import('../src/compose.js');
    const config = parseConfig({ validate: { clip: { min_similarity: 0.3 } }, pipeline: { retries: 2 } });
    const presets = presetsOf(config);
    expect(presets.names()).toEqual(['realtime', 'fast', 'balanced', 'quality']);
    expect(presets.resolve().name).toBe('balanced');
    expect(presets.resolve('balanced').settings).toEqual(configSettings(config));
    const realtime = presets.resolve('realtime').settings;
    expect(realtime.pipeline).toMatchObject({ retries: 0, max_gaussians: 60_000 });
    expect(realtime.validate.clip.min_similarity).toBe(0.3); // not a knob realtime moves
    expect(presets.resolve('realtime').fingerprint).not.toBe(presets.resolve('balanced').fingerprint);
  });

  it('lets a user add a preset and change a built-in one, keeping its other values', async () => {
    const { presetsOf } = await import('../src/pipelines/presets.js');
    const config = parseConfig({
      presets: { fast: { pipeline: { retries: 1 } }, 'my-look': { text_to_image: { gpu_worker: { steps: 1 } } } },
      contract: { preset: 'my-look' },
    });
    const presets = presetsOf(config);
    expect(presets.resolve('fast').settings.pipeline).toMatchObject({ retries: 1, max_gaussians: 300_000 });
    expect(presets.resolve().name).toBe('my-look');
    expect(presets.resolve().settings.text_to_image.gpu_worker).toMatchObject({ steps: 1, size: 1024 });
  });

  it('stops start-up on a bad preset, naming its key', () => {
    expect(() => parseConfig({ presets: { fast: { text_to_image: { gpu_worker: { size: 770 } } } } })).toThrow(
      /presets\.fast\.text_to_image\.gpu_worker\.size: .*multiple of 16/,
    );
    expect(() => parseConfig({ presets: { mine: { pipeline: { max_gaussians: 5000 } } } })).toThrow(
      /presets\.mine\.pipeline\.max_gaussians: .*7000/,
    );
    expect(() => parseConfig({ presets: { mine: { pipeline: { retries: 9 } } } })).toThrow(/presets\.mine\.pipeline\.retries: /);
    expect(() => parseConfig({ presets: { mine: { matting: { margin: 0.2 } } } })).toThrow(/presets\.mine\.matting: unknown key/);
    expect(() => parseConfig({ presets: { 'Big Look': {} } })).toThrow(/presets\.Big Look: a preset name/);
    expect(() => parseConfig({ contract: { image_file_preset: 'turbo' } })).toThrow(
      /contract\.image_file_preset: unknown preset "turbo"; known presets: realtime, fast, balanced, quality/,
    );
  });

  it('gives presets mesh knobs (the most faces a request may ask, default faces and texture side) whose defaults every request can meet', async () => {
    const { presetsOf } = await import('../src/pipelines/presets.js');
    const presets = presetsOf(parseConfig({ presets: { props: { pipeline: { glb_faces: 20_000, glb_texture_size: 1024 } } } }));
    expect(presets.resolve('props').settings.pipeline).toMatchObject({ max_faces: 100_000, glb_faces: 20_000, glb_texture_size: 1024 });
    expect(presets.resolve('realtime').settings.pipeline.max_faces).toBe(30_000);
    expect(presets.resolve('quality').settings.pipeline.max_faces).toBe(250_000);
    // Delivery only: the asset a preset makes, and so its cache key, is the same whatever its mesh defaults.
    expect(presets.resolve('props').fingerprint).toBe(presets.resolve('balanced').fingerprint);
    expect(() => parseConfig({ presets: { mine: { pipeline: { glb_faces: 300 } } } })).toThrow(
      /presets\.mine\.pipeline\.glb_faces: 0 \(the mesh as made\), or from 500 to max_faces \(100000\)/,
    );
    expect(() => parseConfig({ presets: { mine: { pipeline: { max_faces: 20_000, glb_faces: 30_000 } } } })).toThrow(
      /presets\.mine\.pipeline\.glb_faces: /,
    );
    expect(() => parseConfig({ presets: { mine: { pipeline: { glb_texture_size: 512 } } } })).toThrow(
      /presets\.mine\.pipeline\.glb_texture_size: a 512 px texture holds the colours of at most 65536 triangles, fewer than max_faces \(100000\)/,
    );
    expect(() => parseConfig({ pipeline: { glb_texture_size: 100 } })).toThrow(/glb_texture_size: 0 \(as made\), or from 256 to 4096/);
  });
});

describe('configuration reference', () => {
  it('docs/configuration.md matches the schema (run `npm run docs:config` after changing it)', async () => {
    const { configMarkdown } = await import('../src/config/load.js');
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')).toBe(configMarkdown());
  });
});
