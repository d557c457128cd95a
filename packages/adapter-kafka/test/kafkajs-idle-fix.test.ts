import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { applyKafkajsIdleFix } from '../src/kafkajs-idle-fix.js';

interface Queue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
}
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as { prototype: { scheduleCheckPendingRequests(this: Queue): void } };
const queue = (pending: unknown[]): Queue => ({ pending, throttledUntil: -1, throttleCheckTimeoutId: null, checkPendingRequests() {} });

describe('kafkajs idle fix (kafkajs #1556)', () => {
  it('with nothing pending and no throttle, no timer is armed (kafkajs re-armed one every millisecond)', () => {
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
});
