/**
 * triesUntil: the turns of a bounded retry. Yields at once, then again after
 * pauses that double from 20 ms to at most 500 ms, until `timeoutMs` has
 * passed (the last pause is cut to end at the deadline). The loop body tries
 * and returns on success; falling out of the loop means time ran out.
 */
export async function* triesUntil(timeoutMs: number): AsyncGenerator<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    yield;
    const left = deadline - Date.now();
    if (left <= 0) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
  }
}
