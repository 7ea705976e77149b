/** Runtime errors to HTTP statuses: every 503 tells the client when to come back. */
import { describe, expect, it } from 'vitest';
import { httpErrorOf } from '../src/contract/status.js';
import { BusyError, CancelledError, DeadlineError, NotReadyError, ShuttingDownError } from '../src/pipelines/errors.js';

describe('httpErrorOf', () => {
  it('gives every 503 a Retry-After: busy, past the deadline, shutting down, not ready, and a cancelled job', () => {
    const errors = [
      new BusyError('busy'),
      new DeadlineError('late'),
      new ShuttingDownError('stopping'),
      new NotReadyError('loading'),
      new CancelledError('job x was cancelled'),
    ];
    for (const err of errors) {
      const http = httpErrorOf(err, { retryAfterS: 9 });
      expect(http?.status, err.name).toBe(503);
      expect(http?.headers['Retry-After'], err.name).toBe('9');
    }
    expect(httpErrorOf(new BusyError('busy', 42), { retryAfterS: 9 })?.headers['Retry-After']).toBe('42');
  });
});
