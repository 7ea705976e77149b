/**
 * Outcome -> HTTP. `plyResponse` is the only way a 200 with asset bytes leaves the service, and it refuses
 * bytes that break the subnet's PLY rules: a bad 200 would kill the miner's worker loop for good.
 */
import type { Outcome, Report } from '../pipelines/job.js';
import { servablePlyViolation } from '../splat/servable.js';
import { HttpError } from './errors.js';

export function plyResponse(ply: Uint8Array, headers: Record<string, string> = {}): Response {
  const violation = servablePlyViolation(ply);
  if (violation) throw new HttpError(500, `refusing to serve an asset that breaks the PLY rules: ${violation}`);
  return new Response(ply, {
    status: 200,
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(ply.length), ...headers },
  });
}

/** 200 video/mp4; refuses bytes that do not start with an MP4 `ftyp` box (a broken encode is a 500, never a 200). */
export function mp4Response(mp4: Uint8Array, headers: Record<string, string> = {}): Response {
  const ftyp = mp4.length >= 8 && String.fromCharCode(mp4[4], mp4[5], mp4[6], mp4[7]) === 'ftyp';
  if (!ftyp) throw new HttpError(500, 'video encoding produced no valid MP4');
  return new Response(mp4, {
    status: 200,
    headers: { 'Content-Type': 'video/mp4', 'Content-Length': String(mp4.length), ...headers },
  });
}

/** 204: self-validation declined the job; the miner submits nothing and loses nothing. */
export function declinedResponse(headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 204, headers });
}

export function errorResponse(error: HttpError): Response {
  return Response.json({ error: error.message }, { status: error.status, headers: error.headers });
}

/** The outcome's report as compact headers (the full report goes to the log line). */
export function reportHeaders(outcome: Outcome): Record<string, string> {
  const headers: Record<string, string> = { 'X-Fast3d-Report': compactReport(outcome.report) };
  if (outcome.kind === 'asset') {
    headers['X-Fast3d-Seed'] = String(outcome.seed);
    headers['X-Fast3d-Gaussians'] = String(outcome.cloud.count);
    if (outcome.report.bestEffort) headers['X-Fast3d-Best-Effort'] = 'true';
  } else {
    headers['X-Fast3d-Decline-Reason'] = asciiHeader(outcome.reason);
  }
  return headers;
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
