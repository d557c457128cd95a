// Process-side measurements around one run: peak RSS and heap, event-loop
// utilization and delay, CPU time, and the open handles before and after.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';

/** A full GC if we can get one (the CLI enables it at start), so one run's garbage is not charged to the next. */
let gc = /** @type {(() => void) | undefined} */ (globalThis.gc);
export function enableGc() {
  if (gc) return;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc');
  } catch {
    gc = undefined;
  }
}
export function collectGarbage() {
  gc?.();
}

/** Counts of process.getActiveResourcesInfo() by type. */
export function handleCounts() {
  /** @type {Record<string, number>} */
  const counts = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

const total = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);

/** Types whose count grew from `before` to `after`. */
export function handleGrowth(before, after) {
  /** @type {Record<string, number>} */
  const grown = {};
  for (const [type, n] of Object.entries(after)) if (n > (before[type] ?? 0)) grown[type] = n - (before[type] ?? 0);
  return grown;
}

/**
 * Waits up to `timeoutMs` for the handle counts to fall back to `before`
 * (sockets close a moment after `close()` resolves), then returns them.
 */
export async function settledHandles(before, timeoutMs = 3_000) {
  const deadline = Date.now() + timeoutMs;
  let now = handleCounts();
  while (Object.keys(handleGrowth(before, now)).length > 0 && Date.now() < deadline) {
    await sleep(50);
    now = handleCounts();
  }
  return now;
}

/** Samples memory and the event loop from `start()` to `stop()`. */
export class ResourceMonitor {
  start() {
    collectGarbage();
    const m = process.memoryUsage();
    this.baseline = { rss: m.rss, heapUsed: m.heapUsed };
    this.peakRss = m.rss;
    this.peakHeap = m.heapUsed;
    this.elu = performance.eventLoopUtilization();
    this.cpu = process.cpuUsage();
    this.t0 = performance.now();
    this.delay = monitorEventLoopDelay({ resolution: 10 });
    this.delay.enable();
    this.timer = setInterval(() => this.sample(), 100);
    this.timer.unref();
  }

  sample() {
    const m = process.memoryUsage();
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.heapUsed > this.peakHeap) this.peakHeap = m.heapUsed;
  }

  /** @returns {{ peakRssMB: number, peakHeapMB: number, startRssMB: number, startHeapMB: number, elu: number, loopDelayMs: { p50: number, p99: number, max: number }, cpuSeconds: number, wallSeconds: number }} */
  stop() {
    this.sample();
    clearInterval(this.timer);
    this.delay.disable();
    const elu = performance.eventLoopUtilization(this.elu);
    const cpu = process.cpuUsage(this.cpu);
    const mb = (b) => Math.round((b / 1048576) * 10) / 10;
    const ms = (ns) => Math.round(ns / 1e4) / 100;
    return {
      peakRssMB: mb(this.peakRss),
      peakHeapMB: mb(this.peakHeap),
      startRssMB: mb(this.baseline.rss),
      startHeapMB: mb(this.baseline.heapUsed),
      elu: Math.round(elu.utilization * 1000) / 1000,
      loopDelayMs: { p50: ms(this.delay.percentile(50)), p99: ms(this.delay.percentile(99)), max: ms(this.delay.max) },
      cpuSeconds: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
      wallSeconds: Math.round((performance.now() - this.t0) / 10) / 100,
    };
  }
}

export { total as totalHandles };
