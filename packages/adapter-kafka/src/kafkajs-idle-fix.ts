import { patchKafkajsPrototype } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 wakes an idle process far more often than its work needs,
 * through two timers of its RequestQueue (one queue per broker connection):
 *
 * 1. It re-arms its pending-request check after every check even with
 *    nothing pending, and with `throttledUntil` in the past the delay is
 *    negative, so it runs every millisecond on every connection (kafkajs
 *    issue #1556; the fix, PR #1667, was never released). Measured: an idle
 *    bus with one subscription used 5–7 % of a core. With no request pending
 *    and no throttle nothing needs checking (a new request is sent at once or
 *    schedules its own check), so no timer is armed.
 * 2. It checks its in-flight requests against their timeout every 100 ms
 *    (`min(requestTimeout, 100)`), on every connection, idle or not: five
 *    connections of one idle bus woke the process 50 times a second, about a
 *    third of its idle CPU. A request times out after `requestTimeout`
 *    (30 s by default); checking every tenth of that (100 ms to 1 s) keeps
 *    a timeout at most 10 % (or 1 s) late.
 *
 * Applied to kafkajs's own class once, when the adapter loads; if the module
 * moved (another kafkajs version), nothing is changed.
 */
interface InflightRequest {
  sentAt: number;
  requestTimeout: number;
  timeoutRequest(): void;
}
interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: unknown;
  enforceRequestTimeout: boolean;
  requestTimeout: number;
  requestTimeoutIntervalId: NodeJS.Timeout | undefined;
  inflight: Map<number, InflightRequest>;
  isConnected(): boolean;
  destroy(): void;
  scheduleCheckPendingRequests(): void;
  scheduleRequestTimeoutCheck(): void;
}

const PATCHED = Symbol.for('busline.kafkajs.idleFix');

/** How often a connection checks its in-flight requests: a tenth of the timeout, 100 ms to 1 s (never above the timeout). */
export function requestTimeoutCheckMs(requestTimeout: number): number {
  return Math.min(requestTimeout, Math.max(100, Math.min(1_000, requestTimeout / 10)));
}

export function applyKafkajsIdleFix(): boolean {
  return patchKafkajsPrototype<RequestQueueLike>(
    'network/requestQueue/index.js',
    PATCHED,
    ['scheduleCheckPendingRequests', 'scheduleRequestTimeoutCheck', 'destroy'],
    (proto) => {
      const original = proto.scheduleCheckPendingRequests;
      proto.scheduleCheckPendingRequests = function (this: RequestQueueLike): void {
        if (this.pending.length === 0 && !this.throttleCheckTimeoutId && this.throttledUntil - Date.now() <= 0) return;
        original.call(this);
      };
      // kafkajs's own body, with the interval above in place of min(requestTimeout, 100).
      proto.scheduleRequestTimeoutCheck = function (this: RequestQueueLike): void {
        if (!this.enforceRequestTimeout) return;
        this.destroy();
        this.requestTimeoutIntervalId = setInterval(() => {
          this.inflight.forEach((request) => {
            if (Date.now() - request.sentAt > request.requestTimeout) request.timeoutRequest();
          });
          if (!this.isConnected()) this.destroy();
        }, requestTimeoutCheckMs(this.requestTimeout));
      };
    },
  );
}
