/**
 * Mesh jobs over HTTP with the CPU preview backends: GLB answers on the legacy route (format=glb), on the newer
 * contract when contract.image_file_output is glb, in the job API, and turntables of the mesh. Every GLB passes
 * the Khronos validator with no errors and the mesh competition's geometry rules, read back by the test's own
 * GLB chunk reader. A backend whose mesh breaks a rule gets a JSON error, never a 200.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RgbaImage } from '../src/image/rgba.js';
import { decodeGlb } from '../src/mesh/glb.js';
import { InflateImageTo3d } from '../src/pipelines/image-to-3d/inflate.js';
import type { ImageTo3d } from '../src/pipelines/stages.js';
import { expectServableGlb } from './helpers/glb-chunks.js';
import { discImage, twoToneDisc } from './helpers/images.js';
import { summariseMp4 } from './helpers/mp4.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

const GLB_TYPE = 'model/gltf-binary';

/** A 200 GLB that passes the Khronos validator and the geometry rules, read by the test's own chunk reader. */
async function expectValidGlb(response: Response, extent = 1) {
  expect(response.status, await errorOf(response)).toBe(200);
  expect(response.headers.get('content-type')).toBe(GLB_TYPE);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { bytes, summary: await expectServableGlb(bytes, extent) };
}

async function errorOf(response: Response): Promise<string> {
  if (response.status === 200) return '';
  return response.clone().text();
}

async function imageForm(png: Buffer, fields: Record<string, string> = {}): Promise<FormData> {
  const form = new FormData();
  form.set('prompt_image_file', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'object.png');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return form;
}

describe('mesh jobs (preview backends)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      cache: { enabled: true, directory: `${process.env.TMPDIR ?? '/tmp'}/fast3d-mesh-jobs-${process.pid}` },
    });
  });
  afterAll(() => server.close());

  it('answers a text prompt with format=glb as a valid GLB on the legacy route', async () => {
    const response = await postForm(`${server.url}/generate/`, { prompt: 'a red wooden chair', format: 'glb', seed: '3' });
    await expectValidGlb(response);
    expect(response.headers.get('x-fast3d-report')).toMatch(/accept/);
  });

  it('answers an image task with format=glb on the newer contract, +Y up: the top of the picture is the top of the mesh', async () => {
    const png = await twoToneDisc();
    const { bytes, summary } = await expectValidGlb(
      await fetch(`${server.url}/generate`, { method: 'POST', body: await imageForm(png, { seed: '7', format: 'glb' }) }),
    );
    // A disc inflates to a lens: as tall as wide, thinner front to back.
    expect(summary.max[1] - summary.min[1]).toBeGreaterThan(summary.max[2] - summary.min[2]);
    // Red above, blue below, as in the picture; the front (+Z) is the picture, the guessed back is darker.
    const mesh = await decodeGlb(bytes);
    const mean = (keep: (i: number) => boolean, channel: number) => {
      let sum = 0,
        n = 0;
      for (let i = 0; i < mesh.positions.length / 3; i++)
        if (keep(i)) {
          sum += mesh.colours![i * 3 + channel];
          n++;
        }
      return sum / n;
    };
    const y = (i: number) => mesh.positions[i * 3 + 1],
      z = (i: number) => mesh.positions[i * 3 + 2];
    expect(mean((i) => y(i) > 0.1, 0)).toBeGreaterThan(mean((i) => y(i) > 0.1, 2) + 0.3);
    expect(mean((i) => y(i) < -0.1, 2)).toBeGreaterThan(mean((i) => y(i) < -0.1, 0) + 0.3);
    expect(mean((i) => z(i) > 0.05, 0) + mean((i) => z(i) > 0.05, 2)).toBeGreaterThan(
      mean((i) => z(i) < -0.05, 0) + mean((i) => z(i) < -0.05, 2),
    );
  });

  it('serves the same GLB from the cache the second time', async () => {
    const fields = { prompt: 'a small blue teapot', format: 'glb', seed: '9' };
    const first = new Uint8Array(await (await postForm(`${server.url}/generate/`, fields)).arrayBuffer());
    const again = await postForm(`${server.url}/generate/`, fields);
    expect(again.headers.get('x-fast3d-cache')).toBe('hit');
    // Buffer comparison: an element-wise deep equality of megabytes would hold the loop for seconds.
    expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(first))).toBe(true);
  });

  it('turns the mesh on /generate_video/ with format=glb, from the cached GLB when it is there', async () => {
    const fields = { prompt: 'a yellow rubber duck', format: 'glb', seed: '4' };
    await expectValidGlb(await postForm(`${server.url}/generate/`, fields));
    const video = await postForm(`${server.url}/generate_video/`, { ...fields, video_res: '128' });
    expect(video.status, await errorOf(video)).toBe(200);
    expect(video.headers.get('content-type')).toBe('video/mp4');
    expect(video.headers.get('x-fast3d-cache')).toBe('asset-hit');
    const summary = summariseMp4(new Uint8Array(await video.arrayBuffer()));
    expect(summary.width).toBe(128);
    expect(summary.samples).toBeGreaterThan(10);
  });

  it('refuses a format it does not know, naming the choices', async () => {
    const response = await postForm(`${server.url}/generate/`, { prompt: 'a chair', format: 'obj' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/format.*ply, spz, glb/);
  });

  it('delivers glb beside spz through the job API', async () => {
    const created = await fetch(`${server.url}/api/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a green cactus', seed: 2, outputs: ['spz', 'glb'] }),
    });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    let job: { state: string; artefacts: { name: string }[] };
    do {
      await new Promise((r) => setTimeout(r, 100));
      job = (await (await fetch(`${server.url}/api/v1/jobs/${id}`)).json()) as typeof job;
    } while (job.state === 'queued' || job.state === 'running');
    expect(job.state).toBe('done');
    expect(job.artefacts.map((a) => a.name).sort()).toEqual(['glb', 'spz']);
    const artefact = await fetch(`${server.url}/api/v1/jobs/${id}/artifacts/glb`);
    expect(artefact.headers.get('content-disposition')).toMatch(/\.glb"/);
    await expectValidGlb(artefact);
  });
});

describe('contract.image_file_output: glb (competition 1 on port 10006)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ contract: { image_file_output: 'glb' } });
  });
  afterAll(() => server.close());

  it('answers POST /generate with prompt_image_file + seed with GLB bytes', async () => {
    const png = await discImage({ size: 300, radius: 120 });
    await expectValidGlb(await fetch(`${server.url}/generate`, { method: 'POST', body: await imageForm(png, { seed: '42' }) }));
  });

  it('still answers PLY when the request says format=ply', async () => {
    const png = await discImage({ size: 300, radius: 120 });
    const response = await fetch(`${server.url}/generate`, { method: 'POST', body: await imageForm(png, { seed: '42', format: 'ply' }) });
    expect(response.status).toBe(200);
    expect(new TextDecoder().decode(new Uint8Array(await response.arrayBuffer()).subarray(0, 4))).toBe('ply\n');
  });

  it('honours another cube: pipeline.mesh_extent 2 fits [-1, 1]', async () => {
    const wide = await startTestServer({ contract: { image_file_output: 'glb' }, pipeline: { mesh_extent: 2 } });
    try {
      const png = await discImage({ size: 200, radius: 80 });
      await expectValidGlb(await fetch(`${wide.url}/generate`, { method: 'POST', body: await imageForm(png, { seed: '1' }) }), 2);
    } finally {
      await wide.close();
    }
  });
});

describe('GLBs that break a rule never leave with a 200', () => {
  /** The preview backend, with one vertex of the mesh's surface not a number: a broken backend. */
  function brokenVertexBackend(): ImageTo3d {
    const inner = new InflateImageTo3d({ depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 });
    return {
      name: 'broken-vertex',
      preview: true,
      readiness: () => ({ ready: true }),
      generate: (image, seed, ctx) => inner.generate(image, seed, ctx),
      async generateWithMesh(image: RgbaImage, seed: number, ctx) {
        const made = await inner.generateWithMesh!(image, seed, ctx);
        made.mesh.positions[made.mesh.indices[0] * 3 + 1] = Number.NaN;
        return made;
      },
    };
  }

  it('answers 500 with the rule a broken mesh breaks, and a PLY of the same job is still served', async () => {
    const server = await startTestServer({}, { imageTo3d: brokenVertexBackend() });
    try {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'a lamp', format: 'glb' });
      expect(response.status).toBe(500);
      expect(response.headers.get('content-type')).toMatch(/application\/json/);
      expect(((await response.json()) as { error: string }).error).toMatch(
        /refusing to serve a glb artefact that breaks its rules: the Khronos glTF validator reports \d+ errors: ACCESSOR_INVALID_FLOAT/,
      );
      expect((await postForm(`${server.url}/generate/`, { prompt: 'a lamp' })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('answers 500 naming the limit when the GLB is larger than pipeline.max_glb_mb', async () => {
    const server = await startTestServer({ pipeline: { max_glb_mb: 0.1 } });
    try {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'a lamp', format: 'glb' });
      expect(response.status).toBe(500);
      expect(((await response.json()) as { error: string }).error).toMatch(/refusing to serve a glb artefact .* over the 0\.1 MB limit/);
    } finally {
      await server.close();
    }
  });

  it('answers 400 when the image-to-3d backend makes no meshes', async () => {
    const inner = new InflateImageTo3d({ depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 });
    const splatsOnly: ImageTo3d = {
      name: 'splats-only',
      preview: true,
      readiness: () => ({ ready: true }),
      generate: (image, seed, ctx) => inner.generate(image, seed, ctx),
    };
    const server = await startTestServer({}, { imageTo3d: splatsOnly });
    try {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'a lamp', format: 'glb' });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/splats-only.*makes no meshes/);
    } finally {
      await server.close();
    }
  });
});
