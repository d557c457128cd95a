import { describe, expect, it } from 'vitest';
import { ErrorCode, type BuslineError } from './errors.js';
import { PublishAdmission } from './publish-admission.js';

describe('PublishAdmission', () => {
  it('admits up to maxInFlight at once, then queues first come first served, then refuses', async () => {
    const a = new PublishAdmission({ maxInFlight: 2, maxWaiting: 2 });
    expect(a.admit(1, 't', 1_000)).toBeUndefined();
    expect(a.admit(1, 't', 1_000)).toBeUndefined();
    const order: number[] = [];
    const w1 = a.admit(1, 't', 1_000)!.then(() => order.push(1));
    const w2 = a.admit(1, 't', 1_000)!.then(() => order.push(2));
    const refused = await a.admit(1, 't', 1_000)!.catch((e: BuslineError) => e);
    expect((refused as BuslineError).code).toBe(ErrorCode.PublishQueueFull);
    expect(a.waiting).toBe(2);
    a.release(1);
    a.release(1);
    await Promise.all([w1, w2]);
    expect(order).toEqual([1, 2]);
    expect(a.inFlight).toBe(2);
    expect(a.waiting).toBe(0);
  });

  it('a batch larger than the window is admitted alone, once nothing else is in flight', async () => {
    const a = new PublishAdmission({ maxInFlight: 10, maxWaiting: 100 });
    expect(a.admit(25, 't', 1_000)).toBeUndefined();
    const next = a.admit(1, 't', 1_000)!;
    a.release(25);
    await next;
    expect(a.inFlight).toBe(1);
  });

  it('a publish that waits longer than its timeout fails with PUBLISH_TIMEOUT and frees its place', async () => {
    const a = new PublishAdmission({ maxInFlight: 1, maxWaiting: 10 });
    a.admit(1, 't', 1_000);
    const error = await a.admit(1, 't', 20)!.catch((e: BuslineError) => e);
    expect((error as BuslineError).code).toBe(ErrorCode.PublishTimeout);
    expect((error as BuslineError).message).toMatch(/within 20 ms/);
    expect(a.waiting).toBe(0);
    a.release(1);
    expect(a.inFlight).toBe(0);
  });
});
