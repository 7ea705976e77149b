/**
 * Server-sent events from an async iterator: each item one `event`/`id`/`data` block, a comment every
 * `heartbeatMs` so proxies keep an idle stream open, and the iterator stopped when the client goes away.
 */
export interface SseMessage {
  id: string;
  event: string;
  data: unknown;
}

export function sseResponse(messages: AsyncIterator<SseMessage>, stop: AbortController, heartbeatMs = 15_000): Response {
  const encoder = new TextEncoder();
  let heartbeat: NodeJS.Timeout | undefined;
  const finish = () => {
    clearInterval(heartbeat);
    stop.abort();
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // The first bytes flush the headers at once, so a client sees the stream open before the first event.
      controller.enqueue(encoder.encode(': stream open\nretry: 1000\n\n'));
      heartbeat = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(': keep-alive\n\n'));
        } catch {
          finish();
        }
      }, heartbeatMs);
      heartbeat.unref();
    },
    async pull(controller) {
      const next = await messages.next();
      if (next.done) {
        finish();
        controller.close();
        return;
      }
      const { id, event, data } = next.value;
      controller.enqueue(encoder.encode(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
    },
    async cancel() {
      finish();
      await messages.return?.();
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' },
  });
}
