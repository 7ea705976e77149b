/**
 * Reading a large request body without holding the event loop. Fetch's `arrayBuffer()` gathers the chunks and
 * joins them at the end, then copies the result once more: for a 32 MiB body that is two passes over fresh
 * memory in one turn, 250-400 ms on a virtual machine (mostly the first touch of each page). Here each chunk is
 * copied, as it comes, into a buffer of the declared length, and the copy takes a turn of the loop per MiB:
 * chunks that arrived together are otherwise copied together.
 */
import { nextTurn } from '../turns.js';

const BYTES_PER_TURN = 1 << 20;

/** The body's bytes; `length` is its Content-Length (the body limit checked it). Rejects when they disagree. */
export async function readBodyInto(request: Request, length: number): Promise<ArrayBuffer> {
  const buffer = new ArrayBuffer(length);
  const bytes = new Uint8Array(buffer);
  let at = 0;
  let sinceTurn = 0;
  if (request.body) {
    for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
      if (at + chunk.length > length) throw new Error(`the body is longer than its Content-Length of ${length} bytes`);
      if (sinceTurn >= BYTES_PER_TURN) {
        await nextTurn();
        sinceTurn = 0;
      }
      bytes.set(chunk, at);
      at += chunk.length;
      sinceTurn += chunk.length;
    }
  }
  if (at !== length) throw new Error(`the body ended after ${at} of the ${length} bytes its Content-Length declares`);
  return buffer;
}
