// The studio page: submit jobs to /api/v1, follow their events, show picture, matte, splat, views, video,
// report and downloads; A/B runs two jobs side by side with linked cameras; a gallery reopens recent jobs.
import { Viewer } from './viewer.js';

const $ = (selector, root = document) => root.querySelector(selector);
const STAGE_LABELS = {
  text_to_image: 'picture',
  matting: 'matte',
  image_to_3d: 'image to 3D',
  normalise: 'normalise',
  validate: 'validate',
};
const TOKEN_KEY = 'fast3d.token';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- API access (the token, when auth is on, lives in sessionStorage) ----
const tokenInput = $('#token');
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) ?? '';
if (tokenInput.value) $('#token-box').hidden = false;
tokenInput.addEventListener('change', () => {
  sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
  start();
});

function authHeaders() {
  const token = tokenInput.value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...init.headers } });
  if (!res.ok) throw await apiError(res);
  return res;
}

async function apiError(res) {
  let message = res.statusText;
  try {
    message = (await res.json()).error ?? message;
  } catch {
    /* not JSON */
  }
  if (res.status === 401) {
    $('#token-box').hidden = false;
    tokenInput.focus();
    return new ApiError(401, `This service needs a token: enter it at the top right (${message}).`);
  }
  if (res.status === 503) {
    const after = res.headers.get('retry-after');
    return new ApiError(503, `The service cannot take the job now: ${message}${after ? `. Retry in ${after} s.` : ''}`);
  }
  return new ApiError(res.status, `${res.status}: ${message}`);
}

const blobUrl = async (path) => URL.createObjectURL(await (await api(path)).blob());

function say(text, isError = false) {
  const el = $('#message');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

/** A job's server-sent events; reconnects with Last-Event-ID when the stream drops before the end. */
async function* jobEvents(id) {
  let last = null;
  for (let tries = 0; tries < 30; tries++) {
    try {
      const res = await api(`/api/v1/jobs/${id}/events`, { headers: last === null ? {} : { 'Last-Event-ID': last } });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const fields = Object.fromEntries(
            block
              .split('\n')
              .filter((l) => l && !l.startsWith(':'))
              .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
          );
          if (fields.data === undefined) continue;
          last = fields.id;
          const event = JSON.parse(fields.data);
          yield event;
          if (event.type === 'end') return;
        }
      }
    } catch (err) {
      if (err instanceof ApiError && err.status !== 503) throw err;
    }
    await sleep(1000);
  }
  throw new Error('lost the event stream');
}

// ---- One job's panel ----
class JobPanel {
  constructor(label) {
    this.el = $('#result-template').content.firstElementChild.cloneNode(true);
    this.el.dataset.label = label;
    $('.label', this.el).textContent = label;
    $('#results').append(this.el);
    this.viewer = null;
    this.stageMs = new Map();
    for (const tab of this.el.querySelectorAll('[role=tab]')) tab.addEventListener('click', () => this.tab(tab.dataset.tab));
    $('.tabs', this.el).addEventListener('keydown', (e) => {
      const tabs = [...this.el.querySelectorAll('[role=tab]')];
      const i = tabs.indexOf(document.activeElement);
      if (i < 0 || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
      const next = tabs[(i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      this.tab(next.dataset.tab);
    });
    $('.reset', this.el).addEventListener('click', () => {
      this.viewer?.reset();
      this.meshViewer?.reset();
    });
    $('.cancel', this.el).addEventListener('click', () => this.cancel());
  }

  tab(name) {
    for (const tab of this.el.querySelectorAll('[role=tab]')) tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
    for (const panel of this.el.querySelectorAll('[data-panel]')) panel.hidden = panel.dataset.panel !== name;
    this.showLevels();
  }

  /** The level switch shows on the Mesh tab once a job has levels of detail. */
  showLevels() {
    const lods = $('.lods', this.el);
    lods.hidden = $('[data-panel=mesh]', this.el).hidden || lods.childElementCount < 2;
  }

  setState(state, detail = '') {
    const el = $('.state', this.el);
    el.textContent = detail ? `${state} · ${detail}` : state;
    el.className = `state ${state}`;
    this.el.dataset.state = state;
    $('.cancel', this.el).hidden = !['queued', 'running'].includes(state);
  }

  /** Follows a job from its first event (a late or reopened job replays what happened so far). */
  async follow(id, title) {
    this.id = id;
    $('.title', this.el).textContent = title ?? '';
    this.setState('queued');
    try {
      for await (const event of jobEvents(id)) await this.onEvent(event);
    } catch (err) {
      this.setState('failed', err.message);
    }
  }

  async onEvent(event) {
    switch (event.type) {
      case 'position':
        // Waiting in line (the queue is busy): where, and when it likely starts.
        this.setState(
          'queued',
          `number ${event.position} in line${event.estimatedStartAt ? `, starts about ${new Date(event.estimatedStartAt).toLocaleTimeString()}` : ''}`,
        );
        break;
      case 'running':
        this.setState('running');
        break;
      case 'stage':
        this.stage(event);
        break;
      case 'intermediate':
        if (event.url) this.picture(event.name, event.url);
        break;
      case 'artefact':
        await this.artefact(event);
        break;
      case 'end':
        await this.end(event);
        break;
    }
  }

  stage({ phase, stage, attempt, ms }) {
    const key = `${stage}#${attempt}`;
    let row = this.el.querySelector(`.timeline li[data-key="${key}"]`);
    if (!row) {
      row = document.createElement('li');
      row.dataset.key = key;
      row.dataset.stage = stage;
      row.innerHTML = '<span class="name"></span><span class="bar"><i></i></span><span class="ms"></span>';
      $('.name', row).textContent = `${STAGE_LABELS[stage] ?? stage}${attempt > 0 ? ` #${attempt + 1}` : ''}`;
      $('.timeline', this.el).append(row);
    }
    row.dataset.state = phase === 'start' ? 'running' : 'done';
    if (phase === 'end') {
      this.stageMs.set(key, ms);
      $('.ms', row).textContent = formatMs(ms);
      const longest = Math.max(...this.stageMs.values(), 1);
      for (const [k, v] of this.stageMs) $(`li[data-key="${k}"] .bar i`, this.el).style.width = `${(100 * v) / longest}%`;
    }
  }

  async picture(name, url) {
    const img = new Image();
    img.alt = name;
    img.src = await blobUrl(url);
    const box = this.el.querySelector(`[data-pic="${name}"]`);
    box.replaceChildren(img);
    box.closest('figure').hidden = false;
  }

  async artefact({ name, url, bytes, triangles, draft }) {
    // A progressive job's draft (draft_spz, draft_glb) shows at once; the final of its kind replaces it.
    const kind = draft ? name.replace(/^draft_/, '') : name;
    const link = document.createElement('a');
    link.href = url;
    link.textContent = `${draft ? `draft ${kind}` : name === 'views' ? 'views.png' : name} (${formatBytes(bytes)}${triangles === undefined ? '' : `, ${triangles.toLocaleString()} ▲`})`;
    link.dataset.artefact = name;
    link.addEventListener('click', (e) => {
      e.preventDefault();
      download(url, `${this.id.slice(0, 8)}-${name}${extensionOf(kind)}`);
    });
    $('.downloads', this.el).append(link);
    if (draft) {
      this.el.dataset.draft = 'shown';
      $('.draft-badge', this.el).hidden = false;
    } else if (this.el.dataset.draft === 'shown' && (kind === 'spz' || kind === 'glb')) {
      this.el.dataset.draft = 'replaced';
      $('.draft-badge', this.el).hidden = true;
    }
    const level = lodLevel(kind);
    if (kind === 'spz') {
      const data = new Uint8Array(await (await api(url)).arrayBuffer());
      this.viewer ??= new Viewer($('[data-panel=viewer]', this.el));
      await this.viewer.load(data);
      this.shown($('[data-panel=viewer]', this.el), name);
      this.onViewer?.(this.viewer);
      this.linkMeshCamera();
    } else if (level !== null && !draft) {
      this.addLevel(level, url, triangles);
      // The top level shows first; the others on their button.
      if (level === 0) await this.showGlb(url, name);
    } else if (kind === 'glb') {
      await this.showGlb(url, name);
    } else if (name === 'views') {
      const img = new Image();
      img.alt = "the validator's 16 views";
      img.src = await blobUrl(url);
      $('[data-panel=views]', this.el).replaceChildren(img);
    } else if (name === 'mp4') {
      const video = document.createElement('video');
      Object.assign(video, { controls: true, loop: true, muted: true, autoplay: true });
      video.src = await blobUrl(url);
      $('[data-panel=video]', this.el).replaceChildren(video);
    }
  }

  /** Loads a GLB into the Mesh tab (meshopt and Draco decoders at hand). */
  async showGlb(url, name) {
    const data = new Uint8Array(await (await api(url)).arrayBuffer());
    this.meshViewer ??= new Viewer($('[data-panel=mesh]', this.el));
    await this.meshViewer.loadGlb(data);
    this.shown($('[data-panel=mesh]', this.el), name);
    this.linkMeshCamera();
    // A job with a mesh and no splats (a reopened GLB-only job): show what there is.
    if (!this.viewer) this.tab('mesh');
  }

  /** What a viewer shows now, and what it showed before (a draft, then the final). */
  shown(panel, name) {
    panel.dataset.shows = name;
    panel.dataset.history = panel.dataset.history ? `${panel.dataset.history} ${name}` : name;
  }

  /** A level of detail's button: its level and triangle count; pressing it shows that level. */
  addLevel(level, url, triangles) {
    const lods = $('.lods', this.el);
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.level = String(level);
    button.setAttribute('aria-pressed', String(level === 0));
    button.textContent = `LOD${level}${triangles === undefined ? '' : ` · ${triangles.toLocaleString()} ▲`}`;
    button.title = `level ${level} of detail${triangles === undefined ? '' : `: ${triangles.toLocaleString()} triangles`}`;
    button.addEventListener('click', async () => {
      for (const b of lods.children) b.setAttribute('aria-pressed', String(b === button));
      try {
        await this.showGlb(url, level === 0 ? 'glb' : `glb_lod${level}`);
      } catch (err) {
        say(err.message, true);
      }
    });
    const after = [...lods.children].find((b) => Number(b.dataset.level) > level);
    lods.insertBefore(button, after ?? null);
    this.showLevels();
  }

  /** The mesh turns with the splats, whichever arrived first: one camera for both tabs. */
  linkMeshCamera() {
    if (this.viewer && this.meshViewer && !this.meshViewer.leader) this.meshViewer.follow(this.viewer);
  }

  async end(event) {
    const job = await (await api(`/api/v1/jobs/${this.id}`)).json();
    if (job.cached) {
      const text = job.state === 'declined' ? 'a remembered decline: no stage ran' : 'answered from the cache: no stage ran';
      $('.timeline', this.el).append(Object.assign(document.createElement('li'), { className: 'note', textContent: text }));
    }
    // A picture the job never had (a decline before its matte, a cache that kept none) leaves no empty box.
    for (const pic of this.el.querySelectorAll('[data-pic]'))
      pic.closest('figure').hidden = !job.intermediates.some((i) => i.name === pic.dataset.pic);
    const run = job.timings.runMs === null ? '' : `${formatMs(job.timings.runMs)} total`;
    this.setState(event.state, event.state === 'done' ? run : (event.reason ?? event.error ?? ''));
    this.report(job);
    this.onEnd?.(job);
    refreshGallery();
  }

  report(job) {
    const box = $('.report', this.el);
    box.replaceChildren();
    const line = (text, cls) => {
      const p = document.createElement('p');
      p.textContent = text;
      if (cls) p.className = cls;
      box.append(p);
    };
    const attempts = job.report?.attempts ?? [];
    const last = attempts.at(-1);
    if (job.cached && !job.report) {
      // The cache remembers that this request was declined, not how: there is no report to show.
      line(`seed ${job.seed} · declined earlier with these settings; the cache remembers the decline, so nothing ran now`);
    } else {
      line(
        `seed ${job.seed} · ${attempts.length} attempt${attempts.length === 1 ? '' : 's'}${attempts.length ? ` (seeds ${attempts.map((a) => a.seed).join(', ')})` : ''}${last ? ` · ${last.gaussians.toLocaleString()} Gaussians` : ''}${job.report?.preview ? ' · preview backends' : ''}${job.cached ? ' · from the cache' : ''}${job.node ? ` · ran on ${job.node}` : ''}`,
      );
      const expires = job.artefacts.find((a) => a.expiresAt)?.expiresAt;
      if (expires) line(`files kept until ${new Date(expires).toLocaleString()}`);
    }
    if (job.reason) line(`Declined: ${job.reason}`, 'why');
    if (job.error) line(`${job.state === 'cancelled' ? 'Cancelled' : 'Failed'}: ${job.error}`, 'why');
    if (!last) return;
    const table = document.createElement('table');
    table.innerHTML = '<thead><tr><th>check</th><th>value</th><th>threshold</th><th>verdict</th></tr></thead><tbody></tbody>';
    for (const attempt of attempts) {
      for (const check of attempt.checks) {
        const tr = document.createElement('tr');
        tr.dataset.check = check.name;
        for (const [text, cls] of [
          [`${check.name}${attempts.length > 1 ? ` (seed ${attempt.seed})` : ''}`],
          [formatNumber(check.value), 'num'],
          [formatNumber(check.threshold), 'num'],
          [check.passed ? 'pass' : 'fail', check.passed ? 'pass' : 'fail'],
        ]) {
          const td = document.createElement('td');
          td.textContent = text;
          if (cls) td.className = cls;
          tr.append(td);
        }
        table.tBodies[0].append(tr);
      }
      if (attempt.reason) line(`attempt with seed ${attempt.seed}: ${attempt.reason}`, 'why');
    }
    box.append(table);
  }

  async cancel() {
    try {
      await api(`/api/v1/jobs/${this.id}`, { method: 'DELETE' });
    } catch (err) {
      say(err.message, true);
    }
  }

  dispose() {
    this.viewer?.dispose();
    this.meshViewer?.dispose();
    this.el.remove();
  }
}

/** Side of the videos the studio asks for. */
const STUDIO_VIDEO_SIZE = 512;

const EXTENSIONS = { ply: '.ply', spz: '.spz', glb: '.glb', mp4: '.mp4', views: '.png', obj: '.obj.zip', glb_splat: '.splat.glb' };

/** A GLB's level of detail: glb is 0, glb_lod2 is 2; null for another kind. */
function lodLevel(kind) {
  if (kind === 'glb') return 0;
  const m = /^glb_lod(\d)$/.exec(kind);
  return m ? Number(m[1]) : null;
}

const extensionOf = (kind) => EXTENSIONS[kind] ?? (lodLevel(kind) ? `.lod${lodLevel(kind)}.glb` : '');

/** Downloads through fetch, so the token travels in its header rather than the URL. */
async function download(url, filename) {
  try {
    const href = await blobUrl(url);
    const a = Object.assign(document.createElement('a'), { href, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
  } catch (err) {
    say(err.message, true);
  }
}

const formatMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const formatBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.ceil(n / 1024)} KB`);
const formatNumber = (v) => (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(3));

// ---- The form ----
let imageFile = null;
let panels = [];
const drop = $('#drop');
const fileInput = $('#image');

function setImage(file) {
  imageFile = file;
  $('#clear-image').hidden = !file;
  $('#drop-text').textContent = file ? `image: ${file.name}` : 'or drop an image here / choose a file';
  drop.querySelector('img')?.remove();
  if (file) drop.prepend(Object.assign(new Image(), { src: URL.createObjectURL(file), alt: 'chosen image' }));
}

drop.addEventListener('click', (e) => {
  if (e.target.id !== 'clear-image') fileInput.click();
});
drop.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    fileInput.click();
  }
});
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files[0]) setImage(e.dataTransfer.files[0]);
});
fileInput.addEventListener('change', () => setImage(fileInput.files[0] ?? null));
$('#clear-image').addEventListener('click', () => {
  setImage(null);
  fileInput.value = '';
});
// The mesh options apply to a GLB: asked for with it.
const meshBox = $('input[name=out][value=glb]');
const syncMeshOptions = () => {
  $('#mesh-options').disabled = !meshBox.checked;
};
meshBox.addEventListener('change', syncMeshOptions);
syncMeshOptions();

/** The mesh options the form sets, as the job API names them (absent: the preset's). */
function meshOptions() {
  if (!meshBox.checked) return {};
  const number = (id) => ($(id).value === '' ? undefined : Number($(id).value));
  const lods = $('#lods').value.trim();
  return {
    faces: number('#faces'),
    sizeM: number('#size-m'),
    pivot: $('#pivot').value || undefined,
    compression: $('#compression').value || undefined,
    lods: lods ? lods.split(',').map((f) => Number(f.trim())) : undefined,
  };
}

$('#ab-kind').addEventListener('change', () => {
  const bySeed = $('#ab-kind').value === 'seed';
  $('#ab-seed-box').hidden = !bySeed;
  $('#ab-preset-box').hidden = bySeed;
});
$('#prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    $('#job-form').requestSubmit();
  }
});

$('#job-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const prompt = $('#prompt').value.trim();
  if (!prompt && !imageFile) {
    say('Type a prompt or choose an image.', true);
    $('#prompt').focus();
    return;
  }
  const outputs = ['spz', ...[...document.querySelectorAll('input[name=out]:checked')].map((i) => i.value)];
  const base = {
    outputs,
    // A studio video is for a look in the page: smaller than a preset's, which is sized for the validator.
    videoSize: outputs.includes('mp4') ? STUDIO_VIDEO_SIZE : undefined,
    preset: $('#preset').value || undefined,
    seed: $('#seed').value === '' ? undefined : Number($('#seed').value),
    progressive: $('#progressive').checked || undefined,
    ...meshOptions(),
  };
  const requests = [{ label: 'A', ...base }];
  if ($('#ab').checked) {
    if ($('#ab-kind').value === 'seed') {
      const seed = $('#ab-seed').value === '' ? Math.floor(Math.random() * 2 ** 32) : Number($('#ab-seed').value);
      requests.push({ label: 'B', ...base, seed });
    } else {
      requests.push({ label: 'B', ...base, preset: $('#ab-preset').value || undefined });
    }
    for (const r of requests)
      r.label = `${r.label} · ${$('#ab-kind').value === 'seed' ? `seed ${r.seed ?? 'auto'}` : (r.preset ?? 'default')}`;
    // One group tag for both: the job list knows them as a pair.
    const group = `ab-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    for (const r of requests) r.group = group;
  }
  $('#generate').disabled = true;
  say('Submitting…');
  try {
    const created = [];
    for (const { label, ...fields } of requests) created.push({ label, job: await submit(prompt, fields) });
    openPanels(
      created.map(({ label, job }) => ({ label, id: job.id, title: prompt || imageFile.name })),
      { announce: true },
    );
    say(created.length > 1 ? 'Two jobs started: A and B.' : 'Job started.');
  } catch (err) {
    say(err.message, true);
  } finally {
    $('#generate').disabled = false;
  }
});

async function submit(prompt, fields) {
  let body;
  let headers = {};
  if (imageFile) {
    body = new FormData();
    body.append('image', imageFile);
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) body.append(k, Array.isArray(v) ? v.join(',') : String(v));
  } else {
    body = JSON.stringify({ prompt, ...fields });
    headers = { 'Content-Type': 'application/json' };
  }
  return (await api('/api/v1/jobs', { method: 'POST', body, headers })).json();
}

/** Opens a panel per job (two side by side for A/B); `announce`: the message line follows them to their end. */
function openPanels(jobs, { announce = false } = {}) {
  for (const panel of panels) panel.dispose();
  const opened = jobs.map(({ label }) => new JobPanel(label));
  panels = opened;
  if (announce) {
    const ends = new Map();
    for (const panel of opened) {
      panel.onEnd = (job) => {
        ends.set(panel, job);
        if (ends.size < opened.length || panels !== opened) return;
        say(
          opened.length > 1 ? opened.map((p) => `${p.el.dataset.label.split(' ')[0]}: ${endText(ends.get(p))}`).join(' · ') : endText(job),
          opened.some((p) => ['failed', 'cancelled'].includes(ends.get(p).state)),
        );
      };
    }
  }
  $('#results').classList.toggle('ab', panels.length > 1);
  if (panels.length === 2) {
    // Linked cameras: whichever viewer exists second follows the first.
    const [a, b] = panels;
    const link = () => {
      if (a.viewer && b.viewer && !b.viewer.leader) b.viewer.follow(a.viewer);
    };
    a.onViewer = link;
    b.onViewer = link;
  }
  jobs.forEach(({ id, title }, i) => panels[i].follow(id, title));
}

/** What the message line says of a finished job. */
function endText(job) {
  switch (job.state) {
    case 'done':
      return `Done${job.timings.runMs === null ? '' : ` in ${formatMs(job.timings.runMs)}`}${job.cached ? ' (from the cache)' : ''}.`;
    case 'declined':
      return `Declined${job.cached ? ' (remembered)' : ''}: ${job.reason ?? 'no reason given'}`;
    case 'cancelled':
      return 'Cancelled.';
    default:
      return `Failed: ${job.error ?? 'no reason given'}`;
  }
}

// ---- Gallery ----
async function refreshGallery() {
  let list;
  try {
    list = (await (await api('/api/v1/jobs?limit=24')).json()).jobs;
  } catch {
    return;
  }
  // The two jobs of an A/B comparison share a group tag: one entry, A (the older) first.
  const entries = [];
  for (const job of list) {
    const pair = job.group && entries.find((e) => e.group === job.group);
    if (pair) pair.jobs.unshift(job);
    else entries.push({ group: job.group, jobs: [job] });
  }
  const gallery = $('#gallery');
  gallery.replaceChildren(
    ...entries.map(({ jobs }) => {
      const pair = jobs.length > 1;
      const labels = pair ? abLabels(jobs) : ['job'];
      const button = document.createElement('button');
      button.type = 'button';
      button.setAttribute('role', 'listitem');
      button.dataset.job = jobs.map((j) => j.id).join(' ');
      if (pair) button.className = 'pair';
      button.title = jobs.map((j, i) => `${pair ? `${labels[i]}: ` : ''}${j.title} (${j.state})`).join('\n');
      button.innerHTML = '<div class="thumbs"></div><span class="t"></span><span class="s"></span>';
      $('.t', button).textContent = pair ? `A/B · ${jobs[0].title}` : jobs[0].title;
      $('.s', button).textContent = jobs.map((j) => j.state).join(' · ');
      for (const job of jobs) $('.thumbs', button).append(thumbnail(job));
      button.addEventListener('click', () => openPanels(jobs.map((job, i) => ({ label: labels[i], id: job.id, title: job.title }))));
      return button;
    }),
  );
  if (!list.length) gallery.textContent = 'No jobs yet.';
}

/** An A/B pair's labels, as the form made them: by preset when theirs differ, else by seed. */
function abLabels([a, b]) {
  const byPreset = a.preset?.name !== b.preset?.name;
  return [a, b].map((job, i) => `${'AB'[i]} · ${byPreset ? (job.preset?.name ?? 'default') : `seed ${job.seed}`}`);
}

/**
 * A job's thumbnail: its picture (generated, or an image task's own), else the front view of its 16 views, else
 * a word for what it has (a decline, a job with neither).
 */
function thumbnail(job) {
  const thumb = Object.assign(document.createElement('div'), { className: 'thumb' });
  const picture = job.intermediates.find((i) => i.name === 'image' && i.url)?.url;
  const views = job.artefacts.find((a) => a.name === 'views')?.url;
  const url = picture ?? views;
  if (!url) {
    thumb.textContent = job.state === 'done' ? 'no picture' : job.state;
    return thumb;
  }
  thumb.dataset.source = picture ? 'picture' : 'views';
  thumbUrl(url).then(
    (u) => {
      thumb.style.backgroundImage = `url(${u})`;
    },
    () => {
      thumb.textContent = 'gone';
    },
  );
  return thumb;
}

/** Thumbnails already fetched, by URL: the gallery is redrawn after every job without fetching them again. */
const thumbUrls = new Map();

function thumbUrl(url) {
  if (!thumbUrls.has(url)) {
    const fetched = blobUrl(url);
    fetched.catch(() => thumbUrls.delete(url));
    thumbUrls.set(url, fetched);
    // Jobs leave the list: keep the newest few dozen.
    for (const [old, made] of thumbUrls) {
      if (thumbUrls.size <= 64) break;
      thumbUrls.delete(old);
      made.then(
        (u) => URL.revokeObjectURL(u),
        () => {},
      );
    }
  }
  return thumbUrls.get(url);
}

// ---- Start ----
async function start() {
  try {
    const health = await (await fetch('/health')).json();
    if (health.mode === 'preview') Object.assign($('#mode'), { hidden: false, textContent: 'preview backends: not for mining' });
  } catch {
    /* the page still works without /health */
  }
  try {
    const { presets, default: fallback } = await (await api('/api/v1/presets')).json();
    for (const select of [$('#preset'), $('#ab-preset')]) {
      select.replaceChildren(...presets.map((p) => new Option(p.name, p.name, false, p.name === fallback)));
    }
    if (presets.length > 1) $('#ab-preset').value = presets.find((p) => p.name !== fallback).name;
    say('');
  } catch (err) {
    say(err.message, true);
  }
  refreshGallery();
}

start();
