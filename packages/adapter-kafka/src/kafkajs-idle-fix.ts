import { patchKafkajsPrototype } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 spins while idle: its RequestQueue re-arms a timer after
 * every check even with nothing pending, and with `throttledUntil` in the
 * past the delay is negative, so it runs every millisecond on every broker
 * connection (kafkajs issue #1556; the fix, PR #1667, was never released).
 * Measured: an idle bus with one subscription used 5–7 % of a core.
 *
 * This applies that fix to kafkajs's own class: with no request pending and
 * no throttle, nothing needs checking (a new request is sent at once or
 * schedules its own check). Applied once, when the adapter loads; if the
 * module moved (another kafkajs version), nothing is changed.
 */
interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: unknown;
  scheduleCheckPendingRequests(): void;
}

const PATCHED = Symbol.for('busline.kafkajs.idleFix');

export function applyKafkajsIdleFix(): boolean {
  return patchKafkajsPrototype<RequestQueueLike>('network/requestQueue/index.js', PATCHED, ['scheduleCheckPendingRequests'], (proto) => {
    const original = proto.scheduleCheckPendingRequests;
    proto.scheduleCheckPendingRequests = function (this: RequestQueueLike): void {
      if (this.pending.length === 0 && !this.throttleCheckTimeoutId && this.throttledUntil - Date.now() <= 0) return;
      original.call(this);
    };
  });
}
