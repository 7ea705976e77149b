/**
 * The studio in a real browser: Debian's chromium (/usr/bin/chromium, WebGL through SwiftShader) driven by
 * playwright-core against the preview service. It submits a prompt through the page, then checks the timeline,
 * the picture and matte, that the viewer's canvas is not blank (pixels unlike the clear colour), a PLY download, and A/B;
 * a progressive job's draft shown first and replaced by the final, LODs with their level switch, meshopt and Draco GLBs;
 * and that the page never grows wider than the window, whatever Recent jobs holds. Screenshots go to
 * test-output/studio/.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireChromium } from './helpers/chromium.js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { glbViolation } from '../src/mesh/rules.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { until } from './helpers/fake-stages.js';
import { discImage } from './helpers/images.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const SHOTS = new URL('../test-output/studio/', import.meta.url).pathname;
const STAGES = ['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate'];

// The viewers' clear colour (studio/viewer.js); a pixel is drawn when it is clearly unlike it.
const CLEAR = [0x0c, 0x0d, 0x10];
const DRAWN = 0.02;

/** The share of the canvas's pixels unlike the clear colour: a blank canvas gives 0. */
async function drawnShare(page: Page, panel: number, kind = 'viewer'): Promise<number> {
  const png = await page.locator(`[data-panel=${kind}] canvas`).nth(panel).screenshot();
  const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let drawn = 0;
  for (let i = 0; i < data.length; i += 3) {
    const d = Math.abs(data[i] - CLEAR[0]) + Math.abs(data[i + 1] - CLEAR[1]) + Math.abs(data[i + 2] - CLEAR[2]);
    if (d > 24) drawn++;
  }
  return drawn / (data.length / 3);
}

/** Waits until the canvas shows something (Spark sorts and draws a frame or two after loading). */
async function untilDrawn(page: Page, panel: number, ms = 15_000, kind = 'viewer'): Promise<number> {
  const end = Date.now() + ms;
  let share = 0;
  while ((share = await drawnShare(page, panel, kind)) < DRAWN && Date.now() < end) await page.waitForTimeout(250);
  return share;
}

/** Marks the job panels on the page, so that a wait afterwards is for the ones a click opens. */
async function markPanels(page: Page): Promise<void> {
  await page.$$eval('.result', (els) =>
    els.forEach((e: any) => {
      e.dataset.seen = 'true';
    }),
  );
}

/**
 * Clicks Generate and waits until its panels have replaced the last job's. Until the job is created the old panels
 * stay, and a wait for "done" would otherwise see the last job's.
 */
async function generate(page: Page): Promise<void> {
  await markPanels(page);
  await page.click('#generate');
  await page.waitForFunction(
    "document.querySelector('.result:not([data-seen])') !== null && document.querySelector('.result[data-seen]') === null",
  );
}

describe('studio in chromium', () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    requireChromium();
    mkdirSync(SHOTS, { recursive: true });
    server = await startTestServer({
      text_to_image: { backend: 'preview' },
      matting: { backend: 'keying' },
      image_to_3d: { backend: 'inflate', inflate: { max_gaussians: 40_000 } },
      validate: { checks: ['gates'] },
      // One job at a time: a progressive job's draft, submitted first, is made first.
      runtime: { pipeline_concurrency: 1 },
      // Cache hits and remembered declines are jobs a person sees too.
      cache: { enabled: true, directory: mkdtempSync(join(tmpdir(), 'fast3d-studio-')) },
    });
    browser = await launchChromium();
    // Reduced motion: no turntable, so software WebGL draws only after changes and the page stays responsive.
    page = await browser.newPage({ viewport: { width: 1366, height: 800 }, reducedMotion: 'reduce' });
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${server.url}/`);
    await page.waitForFunction("document.querySelector('#preset option') !== null");
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a prompt submitted through the page shows every stage in order, the picture, the matte and a splat; the PLY download is valid', async () => {
    await page.fill('#prompt', 'a red wooden chair');
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction(
      "document.querySelector('.result')?.dataset.state === 'done' && document.querySelector('[data-panel=viewer]')?.dataset.loaded === 'true'",
      undefined,
      { timeout: 30_000 },
    );

    const timeline = await page.$$eval('.timeline li', (rows: any[]) => rows.map((r) => [r.dataset.stage, r.dataset.state]));
    expect(timeline).toEqual(STAGES.map((s) => [s, 'done']));
    for (const name of ['image', 'matte']) {
      const width = await page.$eval(`[data-pic=${name}] img`, (img: any) => img.decode().then(() => img.naturalWidth as number));
      expect(width, name).toBeGreaterThan(0);
    }
    expect(await page.locator('.report tr[data-check]').count()).toBeGreaterThan(0);
    expect(await untilDrawn(page, 0)).toBeGreaterThanOrEqual(DRAWN);
    await page.screenshot({ path: `${SHOTS}single.png` });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-artefact=ply]')]);
    expect(download.suggestedFilename()).toMatch(/\.ply$/);
    const bytes = new Uint8Array(readFileSync(await download.path()));
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('ply\n');
    expect(servablePlyViolation(bytes)).toBeNull();
    expect(errors).toEqual([]);
  }, 60_000);

  it('A/B runs the same prompt with two seeds side by side, each with its viewer, timings and report', async () => {
    await page.check('#ab');
    await page.selectOption('#ab-kind', 'seed');
    await page.fill('#seed', '11');
    await page.fill('#ab-seed', '12');
    await generate(page);
    await page.waitForFunction(
      `(() => {
      const results = [...document.querySelectorAll('.result')];
      return results.length === 2 && results.every((r) => r.dataset.state === 'done' && r.querySelector('[data-panel=viewer]')?.dataset.loaded === 'true');
    })()`,
      undefined,
      { timeout: 40_000 },
    );
    const labels = await page.$$eval('.result .label', (els) => els.map((e) => e.textContent));
    expect(labels).toEqual(['A · seed 11', 'B · seed 12']);
    const seeds = await page.$$eval('.result .report p:first-child', (els) => els.map((e) => /seed (\d+)/.exec(e.textContent ?? '')?.[1]));
    expect(seeds).toEqual(['11', '12']);
    await page.screenshot({ path: `${SHOTS}ab.png` });
    for (const panel of [0, 1]) expect(await untilDrawn(page, panel), `viewer ${panel}`).toBeGreaterThanOrEqual(DRAWN);
    expect(await page.locator('.result').nth(1).locator('.timeline li[data-state=done]').count()).toBe(STAGES.length);
    await page.screenshot({ path: `${SHOTS}ab.png` });
    expect(errors).toEqual([]);
  }, 60_000);

  it('a mesh (GLB) asked for in Outputs shows in the Mesh tab through GLTFLoader; its download passes the GLB rules', async () => {
    await page.uncheck('#ab');
    await page.check('input[name=out][value=glb]');
    await page.fill('#prompt', 'a blue teapot');
    await page.fill('#seed', '5');
    await generate(page);
    await page.waitForFunction(
      "document.querySelector('.result')?.dataset.state === 'done' && document.querySelector('[data-panel=mesh]')?.dataset.loaded === 'true'",
      undefined,
      { timeout: 40_000 },
    );
    await page.click('.result [role=tab][data-tab=mesh]');
    expect(await untilDrawn(page, 0, 15_000, 'mesh')).toBeGreaterThanOrEqual(DRAWN);
    await page.screenshot({ path: `${SHOTS}mesh.png` });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-artefact=glb]')]);
    expect(download.suggestedFilename()).toMatch(/\.glb$/);
    const bytes = new Uint8Array(readFileSync(await download.path()));
    expect(await glbViolation(bytes, { extent: 1, maxBytes: 200e6 })).toBeNull();
    expect(errors).toEqual([]);
  }, 60_000);

  it('a draft shows at once and the final replaces it; LODs come with a level switch and triangle counts, meshopt-compressed and placed as asked', async () => {
    await page.check('input[name=out][value=glb]');
    await page.check('#progressive');
    await page.fill('#faces', '6000');
    await page.fill('#lods', '1,0.5,0.25');
    await page.fill('#size-m', '1.8');
    await page.selectOption('#pivot', 'bottom');
    await page.selectOption('#compression', 'meshopt');
    await page.fill('#prompt', 'a green teapot');
    await page.fill('#seed', '9');
    await generate(page);
    await page.waitForFunction(
      "document.querySelector('.result')?.dataset.state === 'done' && document.querySelector('[data-panel=mesh]')?.dataset.shows === 'glb'",
      undefined,
      { timeout: 60_000 },
    );
    // The realtime draft came first in each viewer, then the final replaced it; the badge went with the draft.
    expect(await page.getAttribute('[data-panel=viewer]', 'data-history')).toBe('draft_spz spz');
    expect(await page.getAttribute('[data-panel=mesh]', 'data-history')).toBe('draft_glb glb');
    expect(await page.getAttribute('.result', 'data-draft')).toBe('replaced');
    expect(await page.isHidden('.result .draft-badge')).toBe(true);
    expect(await page.locator('a[data-artefact=draft_spz]').count()).toBe(1);

    // One button per level with its triangles, the top level pressed; another level loads on its button.
    await page.click('.result [role=tab][data-tab=mesh]');
    const levels = await page.$$eval('.lods button', (els: any[]) =>
      els.map((e) => [e.dataset.level, e.textContent, e.getAttribute('aria-pressed')]),
    );
    expect(levels.map(([level]) => level)).toEqual(['0', '1', '2']);
    const triangles = levels.map(([, text]) => Number(/· ([\d,]+) ▲/.exec(text)![1].replace(/,/g, '')));
    expect(triangles[0]).toBeLessThanOrEqual(6000);
    expect(triangles[1]).toBeLessThan(triangles[0]);
    expect(triangles[2]).toBeLessThan(triangles[1]);
    expect(levels.map(([, , pressed]) => pressed)).toEqual(['true', 'false', 'false']);
    expect(await untilDrawn(page, 0, 15_000, 'mesh')).toBeGreaterThanOrEqual(DRAWN);
    await page.click('.lods button[data-level="2"]');
    await page.waitForFunction("document.querySelector('[data-panel=mesh]').dataset.shows === 'glb_lod2'");
    expect(await page.getAttribute('.lods button[data-level="2"]', 'aria-pressed')).toBe('true');
    expect(await untilDrawn(page, 0, 15_000, 'mesh')).toBeGreaterThanOrEqual(DRAWN);
    await page.screenshot({ path: `${SHOTS}lods.png` });

    // The level's download is the file asked for: its size, its pivot, meshopt.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-artefact=glb_lod2]')]);
    expect(download.suggestedFilename()).toMatch(/\.lod2\.glb$/);
    const bytes = new Uint8Array(readFileSync(await download.path()));
    expect(new TextDecoder().decode(bytes).includes('EXT_meshopt_compression')).toBe(true);
    expect(await glbViolation(bytes, { extent: 1, maxBytes: 200e6, placement: { sizeM: 1.8, pivot: 'bottom' } })).toBeNull();
    expect(errors).toEqual([]);

    // A Draco GLB draws too: the decoder comes from three's own files.
    for (const id of ['#faces', '#lods', '#size-m']) await page.fill(id, '');
    await page.selectOption('#pivot', '');
    await page.selectOption('#compression', 'draco');
    await page.uncheck('#progressive');
    await generate(page);
    await page.waitForFunction(
      "document.querySelector('.result')?.dataset.state === 'done' && document.querySelector('[data-panel=mesh]')?.dataset.shows === 'glb'",
      undefined,
      { timeout: 60_000 },
    );
    await page.click('.result [role=tab][data-tab=mesh]');
    expect(await untilDrawn(page, 0, 15_000, 'mesh')).toBeGreaterThanOrEqual(DRAWN);
    const [draco] = await Promise.all([page.waitForEvent('download'), page.click('a[data-artefact=glb]')]);
    expect(new TextDecoder().decode(readFileSync(await draco.path())).includes('KHR_draco_mesh_compression')).toBe(true);
    expect(errors).toEqual([]);
    // The form as the other tests expect it (the mesh output stays asked for, as the test before left it).
    await page.selectOption('#compression', '');
  }, 120_000);

  it('stays within the window at 1280, 1024 and 390 px with 20 recent jobs: badge, API link, job state and verdicts on screen', async () => {
    // One job made, then cache hits of it, under a title long enough to need cutting.
    const prompt = 'a very long prompt about a tall red wooden chair with carved legs and a woven seat';
    for (let i = 0; i < 20; i++) {
      const created = await fetch(`${server.url}/api/v1/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt, seed: 7 }),
      });
      expect(created.status).toBe(202);
      const { id } = (await created.json()) as { id: string };
      await until(
        async () => ((await (await fetch(`${server.url}/api/v1/jobs/${id}`)).json()) as { state: string }).state === 'done',
        30_000,
      );
    }
    await page.reload();
    await page.waitForFunction('document.querySelectorAll("#gallery [data-job]").length >= 20');
    // A finished job open, so its state and its report's verdict column are on the page too.
    await page.click('#gallery [data-job]');
    await page.waitForFunction(
      "document.querySelector('.result')?.dataset.state === 'done' && document.querySelector('.report td.pass') !== null",
    );
    for (const width of [1280, 1024, 390]) {
      await page.setViewportSize({ width, height: 800 });
      const sizes = (await page.evaluate(`(() => {
        const right = (selector) => Math.max(...[...document.querySelectorAll(selector)].map((e) => e.getBoundingClientRect().right));
        return {
          scroll: document.documentElement.scrollWidth,
          inner: window.innerWidth,
          rights: { badge: right('#mode'), api: right('body > header a'), state: right('.result .state'), verdict: right('.report tr > :last-child') },
        };
      })()`)) as { scroll: number; inner: number; rights: Record<string, number> };
      await page.screenshot({ path: `${SHOTS}recent-${width}.png`, fullPage: true });
      expect(sizes.scroll, `page width at ${width} px`).toBeLessThanOrEqual(sizes.inner);
      for (const [name, right] of Object.entries(sizes.rights)) expect(right, `${name} at ${width} px`).toBeLessThanOrEqual(sizes.inner);
    }
    await page.setViewportSize({ width: 1366, height: 800 });
    expect(errors).toEqual([]);
  }, 120_000);

  it("Recent jobs keep each job's detail: pictures of image jobs and cache hits, file names, A/B pairs, the end, a remembered decline", async () => {
    const ended =
      "document.querySelectorAll('.result:not([data-seen])').length > 0 && [...document.querySelectorAll('.result')].every((r) => !r.dataset.seen && ['done', 'declined', 'failed', 'cancelled'].includes(r.dataset.state))";
    const first = (selector: string) => page.locator(`#gallery [role=listitem]:first-child ${selector}`);
    const submit = async () => {
      await generate(page);
      await page.waitForFunction(ended, undefined, { timeout: 40_000 });
    };
    const picture = (name: string) =>
      page
        .$eval(`.result [data-pic=${name}] img`, (img: any) => img.decode().then(() => img.naturalWidth as number), undefined)
        .catch(() => 0);
    await page.uncheck('input[name=out][value=views]');

    // An image job without views: its picture is the image, its title the file's name, in the panel and the gallery.
    const disc = join(SHOTS, 'disc.png');
    writeFileSync(disc, await discImage({ size: 160, radius: 55 }));
    await page.fill('#prompt', '');
    await page.setInputFiles('#image', disc);
    for (const round of ['made', 'cache hit']) {
      await submit();
      expect(await page.getAttribute('.result', 'data-state'), round).toBe('done');
      for (const name of ['image', 'matte']) expect(await picture(name), `${round}: ${name}`).toBeGreaterThan(0);
      expect(await page.textContent('#message'), round).toMatch(round === 'made' ? /^Done in / : /^Done .*\(from the cache\)/);
      await page.waitForFunction(
        "document.querySelector('#gallery [role=listitem] .thumb')?.style.backgroundImage.startsWith('url(\"blob:')",
      );
      expect(await first('.t').textContent(), round).toBe('disc.png');
      expect(await first('.thumb').getAttribute('data-source'), round).toBe('picture');
    }
    expect(await page.textContent('.timeline')).toMatch(/answered from the cache/);
    await page.screenshot({ path: `${SHOTS}cache-hit.png` });

    // An image with no object is declined; the same image again is a remembered decline, not "0 attempts".
    const blank = join(SHOTS, 'blank.png');
    writeFileSync(
      blank,
      await sharp({ create: { width: 96, height: 96, channels: 3, background: '#ffffff' } })
        .png()
        .toBuffer(),
    );
    await page.setInputFiles('#image', blank);
    await submit();
    expect(await page.getAttribute('.result', 'data-state')).toBe('declined');
    expect(await page.textContent('#message')).toMatch(/^Declined: no object/);
    await submit();
    expect(await page.getAttribute('.result', 'data-state')).toBe('declined');
    expect(await page.textContent('#message')).toMatch(/^Declined \(remembered\): no object/);
    const report = await page.textContent('.result .report');
    expect(report).not.toMatch(/0 attempts/);
    expect(report).toMatch(/the cache remembers the decline/);
    expect(await page.textContent('.timeline')).toMatch(/a remembered decline/);
    expect(await picture('image')).toBeGreaterThan(0);
    expect(await page.isHidden('.result [data-pic=matte]')).toBe(true);
    await page.screenshot({ path: `${SHOTS}remembered-decline.png`, fullPage: true });

    // A/B by preset (B = realtime, the form's default): one gallery entry for the pair, which reopens both.
    await page.click('#clear-image');
    await page.fill('#prompt', 'a green cone');
    await page.check('#ab');
    await page.selectOption('#ab-kind', 'preset');
    await submit();
    const labels = await page.$$eval('.result .label', (els) => els.map((e) => e.textContent));
    expect(labels).toEqual(['A · balanced', 'B · realtime']);
    expect(await page.textContent('#message')).toMatch(/^A: Done in .* · B: Done in /);
    await page.waitForFunction("document.querySelector('#gallery [role=listitem]')?.classList.contains('pair')");
    expect(await first('.t').textContent()).toBe('A/B · a green cone');
    expect(await first('.thumb').count()).toBe(2);
    await markPanels(page);
    await page.click('#gallery [role=listitem]:first-child');
    await page.waitForFunction(`${ended} && document.querySelectorAll('.result').length === 2`);
    expect(await page.$$eval('.result .label', (els) => els.map((e) => e.textContent))).toEqual(labels);
    await page.screenshot({ path: `${SHOTS}gallery.png`, fullPage: true });
    await page.uncheck('#ab');
    await page.check('input[name=out][value=views]');
    expect(errors).toEqual([]);
  }, 180_000);
});
