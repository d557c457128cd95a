// One measured run: a target, fresh topics, a load generator (closed loop with
// bounded publish concurrency, or open loop at a fixed offered rate), a drain,
// and everything measured around it.
import { setTimeout as sleep } from 'node:timers/promises';
import { Tracker, encodePayload, nowMs, summarizeHistogram, newHistogram } from './workload.mjs';
import { ResourceMonitor, handleCounts, handleGrowth, settledHandles, totalHandles } from './measure.mjs';

/**
 * @typedef {{
 *   mode: 'closed' | 'open',
 *   count?: number, durationS?: number, rate?: number,
 *   topics: number, keys: number, partitions: number, size: number,
 *   concurrency: number, maxLag: number, warmupS?: number,
 * }} LoadParams
 */

let runCounter = 0;
const RUN_ID = `${Date.now().toString(36).slice(-5)}${process.pid.toString(36)}`;

const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;

/**
 * @param {{ target: any, scenario: string, name: string, params: LoadParams, progress: import('./progress.mjs').Progress, drainTimeoutS?: number }} run
 */
export async function measureRun({ target, scenario, name, params, progress, drainTimeoutS = 60 }) {
  const tag = `${RUN_ID}${(++runCounter).toString(36)}`;
  const topics = Array.from({ length: params.topics }, (_, i) => `bc-${tag}-t${i}`);
  const expected = params.count ?? Math.round((params.rate ?? 100_000) * (params.durationS ?? 10) * 1.2);
  const tracker = new Tracker({ keys: params.keys, expected });
  const keyNames = Array.from({ length: params.keys }, (_, k) => `agg-${k}`);

  const handlesBefore = handleCounts();
  const monitor = new ResourceMonitor();
  monitor.start();
  const result = {
    scenario,
    name,
    target: target.id,
    label: target.label,
    broker: target.broker,
    kind: target.kind,
    params: { ...params },
    topics: topics.length,
    setupSeconds: 0,
    publish: { attempted: 0, acked: 0, failed: 0, msgPerSec: 0, mbPerSec: 0, seconds: 0, firstError: undefined },
    e2e: { received: 0, msgPerSec: 0, mbPerSec: 0, seconds: 0 },
    latency: summarizeHistogram(tracker.histogram),
    correctness: { orderViolations: 0, duplicates: 0, lost: 0, unexpected: 0, examples: [] },
    resources: /** @type {any} */ ({}),
    settings: {},
    error: /** @type {string | undefined} */ (undefined),
    busErrors: [],
  };

  let opened = false;
  try {
    progress.update(0, 'connecting, creating topics');
    const t0 = nowMs();
    await target.open({
      tag,
      topics,
      keys: params.keys,
      partitions: params.partitions,
      size: params.size,
      onMessage: (bytes) => tracker.receive(bytes),
      // Memory topics keep a bounded log so a long run fits in RAM. The cap must never evict a
      // message not yet handed to the consumer (that would be counted as lost): closed loops are
      // bounded by the lag cap, open loops (no lag cap) get room for every message of the run.
      memoryMaxMessages:
        params.mode === 'open'
          ? Math.ceil((Math.round(/** @type {number} */ (params.rate) * /** @type {number} */ (params.durationS)) / params.topics) * 1.1) + 1_000
          : Math.max(50_000, Math.ceil((params.maxLag + params.concurrency) * 1.5)),
    });
    opened = true;
    result.setupSeconds = r2((nowMs() - t0) / 1000);
    result.settings = target.settings?.() ?? {};

    const load = params.mode === 'open' ? openLoop(target, topics, keyNames, tracker, params, progress) : closedLoop(target, topics, keyNames, tracker, params, progress);
    const stats = await load;
    const { start, acked, failed, attempted, lastAckAt, firstError, ackHistogram } = stats;

    // Drain: wait for every acknowledged message (or for the timeout), then a
    // short grace period in which duplicates may still show up.
    const drainStart = nowMs();
    let lastUnique = -1;
    let lastChange = drainStart;
    while (tracker.unique < acked) {
      const now = nowMs();
      if (tracker.unique !== lastUnique) {
        lastUnique = tracker.unique;
        lastChange = now;
      }
      if (now - drainStart > drainTimeoutS * 1000 || now - lastChange > Math.min(drainTimeoutS, 30) * 1000) break;
      progress.update(acked ? tracker.unique / acked : 1, `draining ${fmtInt(acked - tracker.unique)} left`);
      await sleep(20);
    }
    await sleep(target.broker === 'memory' ? 200 : 1_000);

    const pubSeconds = Math.max(1e-6, (lastAckAt - start) / 1000);
    const e2eSeconds = Math.max(1e-6, (tracker.lastAt - start) / 1000);
    result.publish = {
      attempted,
      acked,
      failed,
      msgPerSec: Math.round(acked / pubSeconds),
      mbPerSec: r2((acked * params.size) / pubSeconds / 1e6),
      seconds: r2(pubSeconds),
      firstError,
      ackLatency: summarizeHistogram(ackHistogram),
    };
    result.e2e = {
      received: tracker.unique,
      msgPerSec: Math.round(tracker.unique / e2eSeconds),
      mbPerSec: r2((tracker.unique * params.size) / e2eSeconds / 1e6),
      seconds: r2(e2eSeconds),
    };
    if (params.mode === 'open') result.e2e.offeredRate = params.rate;
    result.latency = summarizeHistogram(tracker.histogram);
    result.correctness = {
      orderViolations: tracker.violations,
      duplicates: tracker.duplicates,
      lost: Math.max(0, acked - tracker.unique),
      unexpected: Math.max(0, tracker.unique - acked),
      examples: tracker.examples,
    };
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
  } finally {
    progress.update(1, 'closing');
    try {
      await target.close();
    } catch (error) {
      result.error ??= `close: ${error instanceof Error ? error.message : String(error)}`;
    }
    result.resources = monitor.stop();
    result.resources.cpuMicrosPerMessage = tracker.unique > 0 ? r2((result.resources.cpuSeconds * 1e6) / tracker.unique) : null;
    if (opened || target.broker !== 'memory') {
      try {
        await target.cleanup();
      } catch (error) {
        result.cleanupError = error instanceof Error ? error.message : String(error);
      }
    }
    const handlesAfter = await settledHandles(handlesBefore);
    const leaked = handleGrowth(handlesBefore, handlesAfter);
    Object.assign(result.resources, {
      handlesBefore: totalHandles(handlesBefore),
      handlesAfter: totalHandles(handlesAfter),
      handlesBeforeByType: handlesBefore,
      handlesAfterByType: handlesAfter,
      leakedHandles: leaked,
    });
    result.busErrors = (target.errors ?? []).splice(0);
  }
  return result;
}

/** Closed loop: `concurrency` publishers, each awaiting its publish before the next; lag above maxLag pauses them. */
async function closedLoop(target, topics, keyNames, tracker, params, progress) {
  const { keys, size, concurrency, maxLag } = params;
  const total = params.count ?? Infinity;
  const seqs = new Uint32Array(keys);
  const ackHistogram = newHistogram();
  const start = nowMs();
  const deadline = params.durationS ? start + params.durationS * 1000 : Infinity;
  let next = 0;
  let acked = 0;
  let failed = 0;
  let lastAckAt = start;
  let firstError;
  let stopped = false;
  /** @type {(() => void)[]} */
  let waiters = [];
  const release = () => {
    const w = waiters;
    waiters = [];
    for (const r of w) r();
  };
  tracker.onProgress = () => {
    if (waiters.length > 0 && next - failed - tracker.unique <= maxLag * 0.8) release();
  };
  let lastUnique = 0;
  let lastMove = start;
  const watchdog = setInterval(() => {
    const now = nowMs();
    if (tracker.unique !== lastUnique) {
      lastUnique = tracker.unique;
      lastMove = now;
    }
    if (now >= deadline || now - lastMove > 30_000) {
      if (now - lastMove > 30_000 && !firstError) firstError = 'no message received for 30 s while publishers waited for lag to fall';
      stopped = true;
      release();
    }
    const f = Number.isFinite(total) ? tracker.unique / total : (now - start) / (deadline - start);
    progress.update(f, `${fmtInt(tracker.unique)} handled, ${fmtInt(Math.round(tracker.unique / Math.max(0.001, (now - start) / 1000)))} msg/s`);
  }, 100);

  async function lane() {
    while (!stopped && next < total) {
      while (!stopped && next - failed - tracker.unique > maxLag) await new Promise((r) => waiters.push(r));
      if (stopped || next >= total) break;
      const now = nowMs();
      if (now >= deadline) {
        stopped = true;
        break;
      }
      const i = next++;
      const key = i % keys;
      const bytes = encodePayload(size, key, seqs[key]++, i, now);
      try {
        await target.publish(topics[key % topics.length], keyNames[key], bytes);
        acked++;
        lastAckAt = nowMs();
        ackHistogram.recordValue(Math.min(600_000_000, Math.max(1, Math.round((lastAckAt - now) * 1000))));
      } catch (error) {
        failed++;
        firstError ??= error instanceof Error ? `${error.code ?? error.name}: ${error.message}` : String(error);
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
  } finally {
    clearInterval(watchdog);
    tracker.onProgress = () => {};
  }
  return { start, acked, failed, attempted: next, lastAckAt, firstError, ackHistogram };
}

/**
 * Open loop: message i is due at start + i / rate. Every tick sends everything
 * that is due, stamped with its *scheduled* time, without waiting for earlier
 * publishes — a slow broker or a stalled sender shows up as latency instead of
 * silently lowering the offered rate (no coordinated omission).
 */
async function openLoop(target, topics, keyNames, tracker, params, progress) {
  const { keys, size } = params;
  const rate = /** @type {number} */ (params.rate);
  const total = Math.max(1, Math.round(rate * /** @type {number} */ (params.durationS)));
  const interval = 1000 / rate;
  const seqs = new Uint32Array(keys);
  const start = nowMs() + 5;
  tracker.recordFromMs = start + Math.min((params.warmupS ?? 1) * 1000, (total * interval) / 10);
  let sent = 0;
  let acked = 0;
  let failed = 0;
  let lastAckAt = start;
  let firstError;
  const ackHistogram = newHistogram();
  const recordFrom = tracker.recordFromMs;
  const onFail = (error) => {
    failed++;
    firstError ??= error instanceof Error ? `${error.code ?? error.name}: ${error.message}` : String(error);
  };
  let lastDraw = 0;
  while (sent < total) {
    const now = nowMs();
    const due = Math.min(total, Math.floor((now - start) / interval) + 1);
    for (; sent < due; sent++) {
      const key = sent % keys;
      const bytes = encodePayload(size, key, seqs[key]++, sent, start + sent * interval);
      const scheduled = start + sent * interval;
      target.publish(topics[key % topics.length], keyNames[key], bytes).then(() => {
        acked++;
        lastAckAt = nowMs();
        if (scheduled >= recordFrom) ackHistogram.recordValue(Math.min(600_000_000, Math.max(1, Math.round((lastAckAt - scheduled) * 1000))));
      }, onFail);
    }
    if (now - lastDraw > 100) {
      lastDraw = now;
      progress.update(sent / total, `offered ${fmtInt(rate)} msg/s, ${fmtInt(tracker.unique)} handled`);
    }
    await sleep(1);
  }
  // Every publish settles (resolves or rejects within the publish timeout).
  const deadline = nowMs() + 60_000;
  while (acked + failed < sent && nowMs() < deadline) await sleep(5);
  return { start, acked, failed, attempted: sent, lastAckAt, firstError, ackHistogram };
}

export function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n);
}

export { r1, r2 };
