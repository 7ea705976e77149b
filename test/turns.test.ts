/**
 * Taking turns on the event loop: work that awaits nextTurn() between its slices runs one slice per turn of the
 * loop, so a timer (or a socket's answer) is served between any two slices, however many jobs are slicing.
 */
import { describe, expect, it } from 'vitest';
import { nextTurn } from '../src/turns.js';

/** Holds the thread for `ms`, as a slice of CPU work does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* working */
  }
}

describe('nextTurn', () => {
  it("runs one waiter per turn, in the order they asked, with the loop's timers between any two", async () => {
    // A timer due at every turn: the slices run between two of its ticks are the loop held without a break.
    let sinceTick = 0;
    let mostBetweenTicks = 0;
    const ticker = setInterval(() => {
      sinceTick = 0;
    }, 1);
    const order: string[] = [];
    const job = async (name: string) => {
      for (let slice = 0; slice < 4; slice++) {
        await nextTurn();
        order.push(`${name}${slice}`);
        busy(3);
        sinceTick++;
        mostBetweenTicks = Math.max(mostBetweenTicks, sinceTick);
      }
    };
    try {
      await Promise.all(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map(job));
    } finally {
      clearInterval(ticker);
    }
    // Eight jobs started together take turns, slice by slice.
    expect(order.slice(0, 10)).toEqual(['a0', 'b0', 'c0', 'd0', 'e0', 'f0', 'g0', 'h0', 'a1', 'b1']);
    expect(order).toHaveLength(32);
    // Waiting with setImmediate instead, all eight first slices run in one turn: 8 between two ticks.
    expect(mostBetweenTicks).toBe(1);
  });
});
