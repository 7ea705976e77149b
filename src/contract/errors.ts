/**
 * An error that maps to an HTTP status and a JSON body { "error": message }, and the bounds on what an error
 * message may echo of what a client sent: a refused request never comes back whole.
 */

/** Longest error message any client gets (HTTP, MCP): a few lines to read, never the megabytes it refused. */
export const MAX_ERROR_CHARS = 400;

/** `text` within `max` characters, saying how long it was when cut: the one bound on every error message. */
export function clipped(text: string, max = MAX_ERROR_CHARS): string {
  if (text.length <= max) return text;
  const note = `... (${text.length} characters)`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}

/** A value the client sent, in quotes, cut to `max` characters (a name, a key, an id). */
export function quoted(value: string, max = 40): string {
  return value.length <= max ? `"${value}"` : `"${value.slice(0, max)}"... (${value.length} characters)`;
}

/** The first `max` items, then how many more: a list of what was refused stays a few names long. */
export function listed(items: readonly string[], max = 5): string {
  const shown = items.slice(0, max).join(', ');
  return items.length > max ? `${shown} and ${items.length - max} more` : shown;
}

/** Schema issues (zod's) as one line: the first few, each with its path, all within the message bound. */
export function issuesText(issues: readonly { path: readonly PropertyKey[]; message: string }[], max = 3): string {
  const lines = issues.slice(0, max).map((i) => {
    const path = i.path.map((p) => clipped(String(p), 40)).join('.');
    return clipped(path ? `${path}: ${i.message}` : i.message, 160).replace(/\s+/g, ' ');
  });
  return lines.join('; ') + (issues.length > max ? `; and ${issues.length - max} more` : '');
}

export class HttpError extends Error {
  override name = 'HttpError';

  constructor(
    readonly status: 400 | 401 | 404 | 405 | 409 | 410 | 413 | 415 | 500 | 502 | 503 | 504,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(clipped(message));
  }
}
