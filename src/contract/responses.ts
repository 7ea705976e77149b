/**
 * Answers -> HTTP. `artefactResponse` is the only way a 200 with asset bytes leaves the service, and it refuses
 * bytes that break their format's rules (for PLY, the subnet's): a bad 200 would kill the miner's worker loop.
 */
import type { ArtefactSpec, Format } from '../formats/registry.js';
import type { Report } from '../pipelines/job.js';
import { HttpError } from './errors.js';

/** Header of a GLB answer: the triangles it holds (the count a request's `faces`, or its LOD level, reached). */
export const TRIANGLES_HEADER = 'X-Fast3d-Triangles';

/**
 * A 200 with the artefact's bytes, once its format has checked them: against the bounds its spec asked for (a
 * size or pivot) when there is one, else the unit cube every default answer keeps.
 */
export async function artefactResponse(
  format: Format,
  bytes: Uint8Array,
  headers: Record<string, string> = {},
  spec?: ArtefactSpec,
): Promise<Response> {
  const violation = await format.violation(bytes, spec);
  if (violation) throw new HttpError(500, `refusing to serve a ${format.name} artefact that breaks its rules: ${violation}`);
  return new Response(bytes, {
    status: 200,
    headers: { 'Content-Type': format.contentType, 'Content-Length': String(bytes.length), ...headers },
  });
}

/** 204: self-validation declined the job; the miner submits nothing and loses nothing. */
export function declinedResponse(headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 204, headers });
}

export function errorResponse(error: HttpError): Response {
  return Response.json({ error: error.message }, { status: error.status, headers: error.headers });
}

/** The report of an asset as compact headers (the full report goes to the log line and the job API). */
export function assetHeaders(asset: { seed: number; gaussians: number; report: Report }): Record<string, string> {
  const headers: Record<string, string> = {
    'X-Fast3d-Report': compactReport(asset.report),
    'X-Fast3d-Seed': String(asset.seed),
    'X-Fast3d-Gaussians': String(asset.gaussians),
  };
  if (asset.report.bestEffort) headers['X-Fast3d-Best-Effort'] = 'true';
  return headers;
}

/** Why a job was declined, as headers (the report too, when the decline was not remembered from before). */
export function declineHeaders(reason: string, report: Report | null): Record<string, string> {
  return { ...(report ? { 'X-Fast3d-Report': compactReport(report) } : {}), 'X-Fast3d-Decline-Reason': asciiHeader(reason) };
}

/** aiohttp, the miner's client, fails on a header line over 8190 bytes; stay far below. */
const MAX_REPORT_HEADER = 2000;

/** `attempt:seed:verdict[:check=value/threshold/verdict...]` joined by `;`: readable, and short enough for a header. */
export function compactReport(report: Report): string {
  const text = report.attempts
    .map((attempt, i) => {
      const checks = attempt.checks.map((c) => `${c.name}=${round(c.value)}/${round(c.threshold)}/${c.passed ? 'pass' : 'fail'}`);
      return [`${i + 1}`, attempt.seed, attempt.accepted ? 'accept' : 'reject', ...checks].join(':');
    })
    .join(';');
  return asciiHeader(text, MAX_REPORT_HEADER);
}

function round(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

/** Printable ASCII only (header values), cut to `max` characters. */
export function asciiHeader(text: string, max = 200): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > max ? `${ascii.slice(0, max - 3)}...` : ascii;
}
