/**
 * Large request bodies are read a chunk at a time into a buffer of their declared length (fetch's arrayBuffer()
 * joins the chunks and copies the result again at the end: two passes over 32 MiB of fresh memory in one turn of
 * the event loop). The bytes must be exactly the body's, and a body that disagrees with its Content-Length is
 * refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBodyInto } from '../src/http/body.js';
import { discImage } from './helpers/images.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

/** A POST whose body arrives in the given chunks. */
function chunked(chunks: Uint8Array[]): Request {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  return new Request('http://localhost/generate/', { method: 'POST', body, duplex: 'half' } as RequestInit);
}

describe('readBodyInto', () => {
  it('copies the chunks, as they come, into one buffer of the declared length', async () => {
    const chunks = Array.from({ length: 40 }, (_, i) => new Uint8Array(1000 + i).fill(i));
    const length = chunks.reduce((n, c) => n + c.length, 0);
    const bytes = new Uint8Array(await readBodyInto(chunked(chunks), length));
    expect(bytes).toHaveLength(length);
    let at = 0;
    for (const chunk of chunks) {
      expect(Buffer.compare(bytes.subarray(at, at + chunk.length), chunk)).toBe(0);
      at += chunk.length;
    }
  });

  it('copies a MiB per turn of the event loop when many chunks are there at once', async () => {
    // 8 MiB in 64 KiB chunks, each there the moment it is asked for; an immediate queued again at every turn
    // of the loop marks the turns.
    const chunk = new Uint8Array(64 << 10).fill(7);
    let pulled = 0;
    let sinceTurn = 0;
    let mostInOneTurn = 0;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (pulled === 128) return controller.close();
          pulled++;
          sinceTurn++;
          mostInOneTurn = Math.max(mostInOneTurn, sinceTurn);
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
    let marking = true;
    const markTurn = () => {
      sinceTurn = 0;
      if (marking) setImmediate(markTurn);
    };
    setImmediate(markTurn);
    try {
      const bytes = await readBodyInto(
        new Request('http://localhost/', { method: 'POST', body, duplex: 'half' } as RequestInit),
        128 * chunk.length,
      );
      expect(new Uint8Array(bytes).every((b) => b === 7)).toBe(true);
    } finally {
      marking = false;
    }
    // Sixteen chunks make a MiB (and the stream may hold one ahead); copied as they come, all 128 take one turn.
    expect(mostInOneTurn).toBeLessThanOrEqual(18);
  });

  it('refuses a body shorter or longer than its Content-Length', async () => {
    const chunks = [new Uint8Array(300), new Uint8Array(200)];
    await expect(readBodyInto(chunked(chunks), 600)).rejects.toThrow(
      'the body ended after 500 of the 600 bytes its Content-Length declares',
    );
    await expect(readBodyInto(chunked(chunks), 400)).rejects.toThrow('the body is longer than its Content-Length of 400 bytes');
    expect(new Uint8Array(await readBodyInto(chunked([]), 0))).toHaveLength(0);
  });
});

describe('a large urlencoded body over HTTP', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ server: { body_limit_mb: 8 } });
  });
  afterAll(() => server.close());

  it('is read whole: a 4.5 MiB base64 image prompt (line breaks inside) makes the same asset as the bare one', async () => {
    const base64 = (await discImage({ size: 200, radius: 70 })).toString('base64');
    // MIME-wrapped base64 may carry line breaks anywhere: 1.5 M of them (%0A) take the body to 4.5 MiB.
    const wrapped = `${base64.slice(0, 100)}${'\n'.repeat(1536 << 10)}${base64.slice(100)}`;
    const [bare, large] = await Promise.all([
      postForm(`${server.url}/generate/`, { prompt: base64, seed: '7' }),
      postForm(`${server.url}/generate/`, { prompt: wrapped, seed: '7' }),
    ]);
    expect(large.status).toBe(200);
    expect(bare.status).toBe(200);
    expect(Buffer.compare(Buffer.from(await large.arrayBuffer()), Buffer.from(await bare.arrayBuffer()))).toBe(0);
  });

  it("is refused with the prompt's length when it is text over the limit", async () => {
    const response = await postForm(`${server.url}/generate/`, { prompt: 'a'.repeat(2 << 20) });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/^prompt is at least \d+ characters long; the limit is 1024$/);
  });
});
