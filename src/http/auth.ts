/**
 * Bearer auth: which paths need the token, and the check itself. The token is compared as opaque bytes in
 * constant time, so any token an operator sets works (RFC 6750's token68 alphabet is not imposed on it).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { HttpError } from '../contract/errors.js';
import { errorResponse } from '../contract/responses.js';

/**
 * Paths that need the token: "/x" covers /x and /x/...; "/x*" covers every path starting with "/x".
 * /health, /ping stay open for load balancers; /metrics is open unless server.metrics_auth is "token". The studio
 * page and /api/v1/openapi.json stay open (the page asks for the token).
 */
export const PROTECTED_PATHS: readonly string[] = ['/generate', '/generate_*', '/mcp', '/api/v1/jobs', '/api/v1/presets'];

export interface AuthScope {
  /** Also protect GET /metrics (server.metrics_auth: token). */
  metrics?: boolean;
}

export function needsAuth(path: string, scope: AuthScope = {}): boolean {
  const paths = scope.metrics ? [...PROTECTED_PATHS, '/metrics'] : PROTECTED_PATHS;
  return paths.some((p) => (p.endsWith('*') ? path.startsWith(p.slice(0, -1)) : path === p || path.startsWith(`${p}/`)));
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
