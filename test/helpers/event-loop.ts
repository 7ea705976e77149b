/**
 * Watches the event loop: a timer ticks every 10 ms, and the longest gap between ticks (up to the moment it is
 * stopped, so a stall at the very end counts too) is the longest the loop was held.
 */
export function watchEventLoop(): { stop(): number } {
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  return {
    stop() {
      clearInterval(ticker);
      return Math.max(longest, performance.now() - last);
    },
  };
}
