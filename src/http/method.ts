/** 405 for a known path asked with the wrong method (a GET of a generate route), naming the allowed ones. */
import type { Context } from 'hono';
import { HttpError } from '../contract/errors.js';
import { errorResponse } from '../contract/responses.js';

export function methodNotAllowed(...allowed: string[]) {
  const allow = allowed.join(', ');
  return (c: Context) =>
    errorResponse(new HttpError(405, `${c.req.method} is not allowed on ${c.req.path}; use ${allow}`, { Allow: allow }));
}
