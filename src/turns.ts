/**
 * Taking turns on the event loop. `nextTurn()` resolves on a later turn of the loop, one waiter per turn, in the
 * order they asked. CPU work cut into slices, each awaiting it, then runs one slice per turn, and the loop's I/O
 * (a /ping, a socket's next bytes) is served between any two slices, however many jobs are slicing at once. A
 * plain setImmediate would not do: every callback queued before a turn runs back to back within it, so eight jobs
 * each starting a 40 ms step hold the loop for 320 ms.
 */
const waiting: (() => void)[] = [];
let scheduled = false;

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (!scheduled) schedule();
  });
}

function schedule(): void {
  scheduled = true;
  setImmediate(() => {
    const next = waiting.shift();
    // Queued from inside an immediate callback, the next one runs on the next turn, after the loop's I/O.
    if (waiting.length) schedule();
    else scheduled = false;
    next?.();
  });
}
