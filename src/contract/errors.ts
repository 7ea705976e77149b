/** An error that maps to an HTTP status and a JSON body { "error": message }. */
export class HttpError extends Error {
  override name = 'HttpError';

  constructor(
    readonly status: 400 | 401 | 404 | 405 | 409 | 410 | 413 | 415 | 500 | 502 | 503 | 504,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}
