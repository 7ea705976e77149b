/**
 * Large form bodies: a text prompt over the limit is refused from the body's bytes, before the CPU pool (which
 * parses large urlencoded forms behind every job's stages) is asked to parse it; an image prompt, or one whose
 * bytes do not settle it, is still parsed there. A form of far more fields than a request has is refused unparsed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose, type Composed } from '../src/compose.js';
import { overLongUrlencodedPrompt } from '../src/contract/bounded-body.js';
import { fakeStages, serveApp, testConfig, type Served } from './helpers/fake-stages.js';
import { discImage } from './helpers/images.js';

const MiB = 1024 * 1024;
const bytes = (text: string) => new TextEncoder().encode(text);
const EMOJI = '%F0%9F%98%80';
const IDEOGRAPHIC_SPACE = '%E3%80%80';

describe('overLongUrlencodedPrompt', () => {
  it('bounds a text prompt by its encoded length over 12, the most a character takes', () => {
    expect(overLongUrlencodedPrompt(bytes(`prompt=${EMOJI.repeat(1024)}`), 1024)).toBeNull();
    expect(overLongUrlencodedPrompt(bytes(`prompt=${EMOJI.repeat(1025)}`), 1024)).toBe(
      'prompt is at least 1025 characters long; the limit is 1024',
    );
    expect(overLongUrlencodedPrompt(bytes(`seed=4&prompt=${'a'.repeat(5 * MiB)}&format=ply`), 1024)).toBe(
      `prompt is at least ${Math.ceil((5 * MiB) / 12)} characters long; the limit is 1024`,
    );
  });

  it('does not count the whitespace the parser trims, whatever its encoding', () => {
    const padding = `+%20%0A${IDEOGRAPHIC_SPACE}%C2%A0%EF%BB%BF`.repeat(500);
    expect(overLongUrlencodedPrompt(bytes(`prompt=${padding}${'a'.repeat(1000)}${padding}`), 1024)).toBeNull();
    expect(overLongUrlencodedPrompt(bytes(`prompt=${padding}${'a'.repeat(20_000)}${padding}`), 1024)).toBe(
      `prompt is at least ${Math.ceil(20_000 / 12)} characters long; the limit is 1024`,
    );
    // Padding beyond what is decoded at either end (cut mid-character at the window's edge): left to the parser.
    const long = padding.repeat(4);
    for (const value of [
      `${long}${'a'.repeat(1000)}`,
      `${'a'.repeat(1000)}${long}`,
      `${long}${'a'.repeat(20_000)}${long}`,
      `a${'+'.repeat(MiB)}`,
    ]) {
      expect(overLongUrlencodedPrompt(bytes(`prompt=${value}`), 1024)).toBeNull();
    }
  });

  it('leaves what the prompt parser reads as an image to it: a data: URL, base64 with any image magic', async () => {
    const png = (await discImage({ size: 64, radius: 20 })).toString('base64');
    const gif = Buffer.concat([Buffer.from('GIF89a'), Buffer.alloc(30_000, 1)]).toString('base64');
    for (const value of [
      `data:image/png;base64,${'A'.repeat(30_000)}`,
      encodeURIComponent(png) + 'A'.repeat(30_000),
      encodeURIComponent(gif),
      `++${png.replaceAll('+', '%2B')}${'A'.repeat(30_000)}`,
    ]) {
      expect(overLongUrlencodedPrompt(bytes(`prompt=${value}`), 1024), value.slice(0, 40)).toBeNull();
    }
    // Base64 without image magic is text, as the parser reads it.
    expect(overLongUrlencodedPrompt(bytes(`prompt=${Buffer.alloc(30_000, 7).toString('base64')}`), 1024)).toMatch(/^prompt is at least/);
  });

  it('finds only the field named prompt', () => {
    expect(overLongUrlencodedPrompt(bytes(`notprompt=${'a'.repeat(30_000)}`), 1024)).toBeNull();
    expect(overLongUrlencodedPrompt(bytes(`x=aprompt=${'a'.repeat(30_000)}`), 1024)).toBeNull();
    expect(overLongUrlencodedPrompt(bytes(`prompt_image_file=${'a'.repeat(30_000)}`), 1024)).toBeNull();
  });
});

describe('large urlencoded prompts over HTTP', () => {
  let composed: Composed;
  let served: Served;
  let parsed = 0;

  beforeAll(async () => {
    composed = compose(testConfig({ runtime: { cpu_workers: 1 } }), { stages: fakeStages().stages });
    const pool = composed.cpuPool!;
    const parse = pool.parseUrlencoded.bind(pool);
    pool.parseUrlencoded = (body) => {
      parsed++;
      return parse(body);
    };
    await composed.service.start();
    served = await serveApp(composed.app);
  });

  afterAll(async () => {
    await served?.close();
    await composed?.service.close();
    await composed?.renderPool.close();
    await composed?.cpuPool?.close();
  });

  const post = (path: string, body: string) =>
    fetch(`${served.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });

  it('refuses several over-long text prompts sent at once with 400, without the CPU pool parsing any of them', async () => {
    const bodies = [
      `prompt=${'a+red+chair+'.repeat((3 * MiB) / 12)}`,
      `seed=7&prompt=${EMOJI.repeat(MiB / 6)}`,
      `prompt=${'%E6%A4%85%E5%AD%90'.repeat(MiB / 8)}&format=ply`,
      `prompt=++${'x'.repeat(2 * MiB)}++`,
      `prompt=${Buffer.alloc(MiB, 7).toString('base64')}`,
    ];
    const answers = await Promise.all([
      ...bodies.map((b) => post('/generate/', b)),
      post('/generate_video/', bodies[0]),
      post('/api/v1/jobs', bodies[1]),
    ]);
    for (const res of answers) {
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^prompt is at least \d+ characters long; the limit is 1024$/);
    }
    expect(parsed).toBe(0);
  });

  it('refuses a form of more fields than a generate request has before parsing it, urlencoded or multipart', async () => {
    const many = await post('/generate/', `prompt=a+chair&${'a&'.repeat(MiB / 2)}`);
    expect(many.status).toBe(400);
    expect(((await many.json()) as { error: string }).error).toBe('form body has more than 64 fields');
    const form = new FormData();
    form.append('prompt', 'a chair');
    for (let i = 0; i < 100; i++) form.append(`f${i}`, 'x');
    const parts = await fetch(`${served.url}/generate/`, { method: 'POST', body: form });
    expect(parts.status).toBe(400);
    expect(((await parts.json()) as { error: string }).error).toBe('form body has more than 64 fields');
    expect(parsed).toBe(0);
  });

  it('still parses, in the pool, a large image prompt and one whose bytes do not settle it', async () => {
    const png = await discImage({ size: 700, radius: 330, noise: true });
    expect(png.length * (4 / 3)).toBeGreaterThan(MiB);
    const image = await post('/generate/', `prompt=${encodeURIComponent(png.toString('base64'))}`);
    expect(image.status).toBe(200);
    // Two MiB of trailing spaces: the trimmed prompt is short, and answered.
    const padded = await post('/generate/', `prompt=a+small+chair${'+'.repeat(2 * MiB)}`);
    expect(padded.status).toBe(200);
    expect(parsed).toBe(2);
  });
});
