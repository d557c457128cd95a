// The workload: what a message carries, and the receiving side's bookkeeping
// (order per key, duplicates, loss, publish-to-handle latency).
//
// Every message body is `size` bytes; the first 24 carry
//   u32 key index | u32 per-key sequence | u32 global index | u32 flags | f64 send stamp (epoch ms)
// and the rest is filler. The send stamp is the time the message was due to be
// sent: the moment just before the publish call in closed-loop runs, and the
// *scheduled* time in open-loop runs (so a stalled sender shows as latency).
import hdr from 'hdr-histogram-js';

export const HEADER_BYTES = 24;
/** Global index of the warm-up messages that prove a consumer is attached. */
export const WARMUP_INDEX = 0xffffffff;

/** Wall clock in ms since the epoch with sub-ms precision, the same for sender and receiver (one process). */
export const nowMs = () => performance.timeOrigin + performance.now();

/**
 * @param {number} size
 * @param {number} key
 * @param {number} seq
 * @param {number} index
 * @param {number} stampMs
 */
export function encodePayload(size, key, seq, index, stampMs) {
  const bytes = new Uint8Array(Math.max(size, HEADER_BYTES));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, key);
  view.setUint32(4, seq);
  view.setUint32(8, index);
  view.setFloat64(16, stampMs);
  return bytes;
}

/** @param {Uint8Array} bytes */
export function decodePayload(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { key: view.getUint32(0), seq: view.getUint32(4), index: view.getUint32(8), stamp: view.getFloat64(16) };
}

/** A histogram of microseconds, 1 µs .. 10 min, 3 significant digits. */
export function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Percentiles drawn on the latency curves (x axis: 1 / (1 - p)). */
export const CURVE_PERCENTILES = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100];

/** @param {ReturnType<typeof newHistogram>} h */
export function summarizeHistogram(h) {
  if (h.totalCount === 0) return { count: 0, p50: null, p90: null, p99: null, p999: null, max: null, mean: null, curve: [] };
  const ms = (us) => Math.round(us) / 1000;
  const curve = [];
  for (const p of CURVE_PERCENTILES) {
    if (p > 0 && p < 100 && h.totalCount * (1 - p / 100) < 1) continue; // not enough samples to resolve this tail
    curve.push([p, ms(p === 100 ? h.maxValue : h.getValueAtPercentile(p))]);
  }
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
    curve,
  };
}

/**
 * Receiving-side bookkeeping for one run. Per key the sequence must never go
 * backwards among first deliveries (a message that arrives after a later one of
 * its key is one order violation); a second delivery of a global index is a
 * duplicate and is otherwise ignored. Loss is "acknowledged by the broker but
 * never delivered", computed by the caller from the publisher's count.
 */
export class Tracker {
  /**
   * @param {{ keys: number, recordFromMs?: number, expected?: number }} options
   *   recordFromMs: messages stamped earlier are not put in the latency histogram (warm-up)
   */
  constructor({ keys, recordFromMs = 0, expected = 1024 }) {
    this.lastSeq = new Int32Array(keys).fill(-1);
    this.seen = new Uint8Array(Math.ceil(Math.max(expected, 1024) / 8));
    this.histogram = newHistogram();
    this.recordFromMs = recordFromMs;
    this.unique = 0;
    this.duplicates = 0;
    this.violations = 0;
    this.warmups = 0;
    this.firstAt = 0;
    this.lastAt = 0;
    /** @type {string[]} the first few violations, for the report */
    this.examples = [];
    /** called after every first delivery (flow control) */
    this.onProgress = () => {};
  }

  /** @param {Uint8Array} bytes */
  receive(bytes) {
    const now = nowMs();
    const { key, seq, index, stamp } = decodePayload(bytes);
    if (index === WARMUP_INDEX) {
      this.warmups++;
      return;
    }
    const byte = index >>> 3;
    if (byte >= this.seen.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.seen.length * 2));
      grown.set(this.seen);
      this.seen = grown;
    }
    const bit = 1 << (index & 7);
    if (this.seen[byte] & bit) {
      this.duplicates++;
      return;
    }
    this.seen[byte] |= bit;
    if (seq < this.lastSeq[key]) {
      this.violations++;
      if (this.examples.length < 5) this.examples.push(`key ${key}: seq ${seq} after ${this.lastSeq[key]}`);
    } else this.lastSeq[key] = seq;
    if (this.unique === 0) this.firstAt = now;
    this.unique++;
    this.lastAt = now;
    if (stamp >= this.recordFromMs) this.histogram.recordValue(Math.min(600_000_000, Math.max(1, Math.round((now - stamp) * 1000))));
    this.onProgress();
  }
}
