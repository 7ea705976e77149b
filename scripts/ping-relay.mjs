#!/usr/bin/env node
/**
 * RunPod load-balancing endpoints probe GET /ping on PORT_HEALTH. When that differs from the service's PORT,
 * this relays the probe to the service's own /ping (200 ready, 204 initialising, anything else unhealthy) and
 * answers 503 while the service cannot be reached.
 *   node scripts/ping-relay.mjs --listen 8081 --target http://127.0.0.1:8080/ping
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { listen: { type: 'string' }, target: { type: 'string' }, host: { type: 'string', default: '0.0.0.0' } },
});
const port = Number(values.listen);
if (!Number.isInteger(port) || port < 0 || port > 65535 || !values.target) {
  process.stderr.write('usage: ping-relay.mjs --listen PORT --target http://127.0.0.1:PORT/ping [--host 0.0.0.0]\n');
  process.exit(2);
}
const target = values.target;

const server = createServer(async (req, res) => {
  if (req.method !== 'GET' || (req.url ?? '').split('?')[0].replace(/\/+$/, '') !== '/ping') {
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route for ${req.method} ${req.url}` }));
    return;
  }
  try {
    const answer = await fetch(target, { signal: AbortSignal.timeout(5000) });
    const body = Buffer.from(await answer.arrayBuffer());
    const headers = answer.status === 204 ? {} : { 'content-type': answer.headers.get('content-type') ?? 'application/json' };
    res.writeHead(answer.status, headers).end(answer.status === 204 ? undefined : body);
  } catch (err) {
    res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'unreachable', error: err.message }));
  }
});
server.listen(port, values.host, () => {
  process.stdout.write(`ping relay on ${values.host}:${server.address().port} -> ${target}\n`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
