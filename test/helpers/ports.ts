/**
 * A loopback port for a process that a test starts and that binds it later. It comes from below the kernel's
 * ephemeral range: a port from that range (what `listen(0)` gives) may be handed to an outgoing connection of a
 * parallel test before the process binds it.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;

/** The first port of the ephemeral range (Linux's default when /proc does not say). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether `port` can be bound on 127.0.0.1 now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A free port outside the ephemeral range, chosen at random among the ones that bind. */
export async function freePort(): Promise<number> {
  const end = ephemeralStart();
  for (let tries = 0; tries < 100; tries++) {
    const port = LOWEST + Math.floor(Math.random() * (end - LOWEST));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free loopback port found between ${LOWEST} and ${end}`);
}
