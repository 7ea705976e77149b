/**
 * Fingerprints of a job's settings: what, besides the request, decides the bytes it produces. The asset's
 * fingerprint covers the sections that change the cloud; the render fingerprint those that change a video or
 * views, but not how many threads render them. Both end in cache keys, so changing a setting never serves
 * bytes made under the old one.
 */
import { createHash } from 'node:crypto';
import { VERSION } from '../version.js';
import type { JobSettings } from './context.js';

/** Sections of the settings that change the asset a job produces. */
export const ASSET_SECTIONS = ['pipeline', 'text_to_image', 'matting', 'image_to_3d', 'validate'] as const;

export function settingsFingerprint(settings: JobSettings): string {
  // What a delivered mesh is by default, and what a request may ask of it, changes a mesh artefact's own key
  // (its spec), never the asset: left out, so changing them regenerates nothing.
  const { max_faces: _max, glb_faces: _faces, glb_texture_size: _side, ...pipeline } = settings.pipeline;
  const sections = Object.fromEntries(ASSET_SECTIONS.map((s) => [s, s === 'pipeline' ? pipeline : settings[s]]));
  return sha256(stableJson({ version: VERSION, sections }));
}

export function renderFingerprint(settings: JobSettings): string {
  const { threads: _threads, ...render } = settings.render;
  return sha256(stableJson(render)).slice(0, 16);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON with object keys sorted, so equal settings give equal fingerprints whatever their key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
