/**
 * What the contract routes answer is held byte for byte: fixed prompts and seeds on every route, with the preview
 * backends, must give exactly the bytes recorded here. A refactor of the answer path, the job context or the
 * format registry may change how bytes are made, never which bytes leave.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discImage } from './helpers/images.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

const sha256 = (bytes: ArrayBuffer) => createHash('sha256').update(new Uint8Array(bytes)).digest('hex');

/** sha256 of each route's body for the requests below (preview backends, default settings but a small video). */
const EXPECTED = {
  text: '81fd37b844532db0a008526099f0938928a3b6754b11ff4a2b3ea61b78815e29',
  base64Image: '0abd20845fbb9879d9c9f3a22da5fd352118224d38cde1f401fad7b15fcdbc73',
  imageFile: 'df9dd3d6542ab94350d5a2fbfe57205dfd9cf17fe144902ecce7114bec8df391',
  imageFileYUp: '0abd20845fbb9879d9c9f3a22da5fd352118224d38cde1f401fad7b15fcdbc73',
  video: '32b8f05ce3e69c2152ed03e2286570fb9f44f3aad8b097b32878d67b24f5e78d',
  videoImageFile: 'c1144815ca91c28c18be050cadb0019ec87a41c52becdafa9427c231a42057c6',
};

describe('contract routes answer the recorded bytes', () => {
  let server: TestServer;
  let png: Buffer;
  beforeAll(async () => {
    // The frame of prompt_image_file answers is pinned here: its default is a config decision, not these bytes'.
    server = await startTestServer({
      render: { frames: 4, fps: 4, video_res: 64 },
      contract: { image_file_rotation: 'y-down' },
    });
    png = await discImage({ size: 160, radius: 55 });
  });
  afterAll(() => server.close());

  async function body(response: Response): Promise<string> {
    expect(response.status).toBe(200);
    return sha256(await response.arrayBuffer());
  }

  it('POST /generate/ with a text prompt and a seed', async () => {
    expect(await body(await postForm(`${server.url}/generate/`, { prompt: 'pink bicycle', seed: '42' }))).toBe(EXPECTED.text);
  });

  it('POST /generate/ with a base64 image prompt', async () => {
    const response = await postForm(`${server.url}/generate/`, { prompt: png.toString('base64'), seed: '7' });
    expect(await body(response)).toBe(EXPECTED.base64Image);
  });

  it('POST /generate with prompt_image_file and seed (the newer contract)', async () => {
    const form = new FormData();
    form.set('prompt_image_file', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'object.png');
    form.set('seed', '7');
    expect(await body(await fetch(`${server.url}/generate`, { method: 'POST', body: form }))).toBe(EXPECTED.imageFile);
  });

  it('POST /generate_video/ with a text prompt and a seed', async () => {
    const response = await postForm(`${server.url}/generate_video/`, { prompt: 'a red wooden chair', seed: '3', video_res: '64' });
    expect(response.headers.get('content-type')).toBe('video/mp4');
    expect(await body(response)).toBe(EXPECTED.video);
  });

  it('POST /generate_video/ with prompt_image_file (rendered upright, whatever the delivery frame)', async () => {
    const form = new FormData();
    form.set('prompt_image_file', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'object.png');
    form.set('seed', '7');
    form.set('video_res', '64');
    expect(await body(await fetch(`${server.url}/generate_video/`, { method: 'POST', body: form }))).toBe(EXPECTED.videoImageFile);
  });
});

describe('contract routes answer the recorded bytes in the Y-up frame', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ contract: { image_file_rotation: 'identity' } });
  });
  afterAll(() => server.close());

  it("POST /generate with prompt_image_file, answers in the validator's frame", async () => {
    const png = await discImage({ size: 160, radius: 55 });
    const form = new FormData();
    form.set('prompt_image_file', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'object.png');
    form.set('seed', '7');
    const response = await fetch(`${server.url}/generate`, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    expect(sha256(await response.arrayBuffer())).toBe(EXPECTED.imageFileYUp);
  });
});
