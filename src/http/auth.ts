/**
 * Bearer auth: which paths need the token, and the check itself. The token is compared as opaque bytes in
 * constant time, so any token an operator sets works (RFC 6750's token68 alphabet is not imposed on it).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { HttpError } from '../contract/errors.js';
import { errorResponse } from '../contract/responses.js';

/**
 * The paths open without the token, when auth is on; every other path needs it, so a new route is protected
 * unless it is added here. "/x" is exactly /x (with or without a trailing slash); "/x/*" is every path under /x/.
 * /health and /ping are for load balancers, the studio's page and static files ask for the token themselves, and
 * the OpenAPI document describes the API to clients that then send it. /metrics is open unless server.metrics_auth
 * is "token".
 */
export const OPEN_PATHS: readonly string[] = ['/health', '/ping', '/', '/studio', '/studio/*', '/api/v1/openapi.json'];

export interface AuthScope {
  /** Also protect GET /metrics (server.metrics_auth: token). */
  metrics?: boolean;
}

export function needsAuth(path: string, scope: AuthScope = {}): boolean {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
  const open = scope.metrics ? OPEN_PATHS : [...OPEN_PATHS, '/metrics'];
  return !open.some((p) => (p.endsWith('/*') ? trimmed.startsWith(p.slice(0, -1)) : trimmed === p));
}

const SCHEME = /^Bearer +/i;
const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="fast3d"' };

/** Refuses requests to protected paths without "Authorization: Bearer <token>" (401; 400 for another scheme). */
export function bearerAuth(token: string, scope: AuthScope = {}): MiddlewareHandler {
  const expected = digest(token);
  return async (c, next) => {
    if (!needsAuth(c.req.path, scope)) return next();
    const header = c.req.header('authorization');
    if (header === undefined) {
      return errorResponse(new HttpError(401, 'this route needs an "Authorization: Bearer <token>" header', CHALLENGE));
    }
    const scheme = SCHEME.exec(header.slice(0, 64));
    if (!scheme) {
      return errorResponse(
        new HttpError(400, 'malformed Authorization header; expected "Bearer <token>"', {
          ...CHALLENGE,
          'WWW-Authenticate': 'Bearer error="invalid_request"',
        }),
      );
    }
    // Digests have one length, so the comparison time says nothing about the token's length or prefix.
    if (!timingSafeEqual(digest(header.slice(scheme[0].length).trimEnd()), expected)) {
      return errorResponse(new HttpError(401, 'invalid bearer token', { 'WWW-Authenticate': 'Bearer error="invalid_token"' }));
    }
    return next();
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
