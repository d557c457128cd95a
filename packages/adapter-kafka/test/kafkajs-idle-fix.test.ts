import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { applyKafkajsIdleFix, requestTimeoutCheckMs } from '../src/kafkajs-idle-fix.js';

interface Queue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
}
interface TimeoutQueue {
  enforceRequestTimeout: boolean;
  requestTimeout: number;
  requestTimeoutIntervalId: NodeJS.Timeout | undefined;
  inflight: Map<number, { sentAt: number; requestTimeout: number; timeoutRequest(): void }>;
  connected: boolean;
  isConnected(): boolean;
  destroy(): void;
}
type QueueProto = {
  scheduleCheckPendingRequests(this: Queue): void;
  scheduleRequestTimeoutCheck(this: TimeoutQueue): void;
};
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as { prototype: QueueProto };
const queue = (pending: unknown[]): Queue => ({ pending, throttledUntil: -1, throttleCheckTimeoutId: null, checkPendingRequests() {} });
const timeoutQueue = (requestTimeout: number): TimeoutQueue => ({
  enforceRequestTimeout: true,
  requestTimeout,
  requestTimeoutIntervalId: undefined,
  inflight: new Map(),
  connected: true,
  isConnected() {
    return this.connected;
  },
  destroy() {
    clearInterval(this.requestTimeoutIntervalId);
  },
});

describe('kafkajs idle fix', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('with nothing pending and no throttle, no timer is armed (kafkajs #1556: it re-armed one every millisecond)', () => {
    expect(applyKafkajsIdleFix()).toBe(true);
    const idle = queue([]);
    RequestQueue.prototype.scheduleCheckPendingRequests.call(idle);
    expect(idle.throttleCheckTimeoutId).toBeNull();
  });

  it('a pending request still gets its check scheduled', () => {
    applyKafkajsIdleFix();
    const busy = queue([{}]);
    RequestQueue.prototype.scheduleCheckPendingRequests.call(busy);
    expect(busy.throttleCheckTimeoutId).not.toBeNull();
    clearTimeout(busy.throttleCheckTimeoutId!);
  });

  it('in-flight requests are checked every tenth of the request timeout, 100 ms to 1 s (kafkajs: every 100 ms)', () => {
    expect(requestTimeoutCheckMs(30_000)).toBe(1_000);
    expect(requestTimeoutCheckMs(5_000)).toBe(500);
    expect(requestTimeoutCheckMs(300)).toBe(100);
    expect(requestTimeoutCheckMs(50)).toBe(50);
  });

  it('an idle connection wakes once per check interval, and a request past its timeout is still timed out', () => {
    applyKafkajsIdleFix();
    vi.useFakeTimers();
    const q = timeoutQueue(30_000);
    RequestQueue.prototype.scheduleRequestTimeoutCheck.call(q);
    const checks = vi.spyOn(q, 'isConnected');
    vi.advanceTimersByTime(10_000);
    // kafkajs's 100 ms interval checked 100 times in these 10 s.
    expect(checks).toHaveBeenCalledTimes(10);

    const timedOut = vi.fn();
    q.inflight.set(1, { sentAt: Date.now(), requestTimeout: 30_000, timeoutRequest: timedOut });
    vi.advanceTimersByTime(30_000);
    expect(timedOut).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1_000);
    expect(timedOut).toHaveBeenCalledTimes(1);

    q.connected = false;
    vi.advanceTimersByTime(1_000);
    const after = checks.mock.calls.length;
    vi.advanceTimersByTime(10_000);
    // A connection that closed stops its checks.
    expect(checks.mock.calls.length).toBe(after);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a queue that does not enforce request timeouts arms nothing, as in kafkajs', () => {
    applyKafkajsIdleFix();
    const q = { ...timeoutQueue(30_000), enforceRequestTimeout: false };
    RequestQueue.prototype.scheduleRequestTimeoutCheck.call(q);
    expect(q.requestTimeoutIntervalId).toBeUndefined();
  });
});
