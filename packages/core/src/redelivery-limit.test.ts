/**
 * A message the broker delivers more than `retry.maxAttempts` times (every
 * earlier delivery ended unsettled, e.g. its handler's process died) is
 * dead-lettered without running the handler again, on the in-memory broker.
 */
import { describe, expect, it } from 'vitest';
import { createEventBus } from './create-event-bus.js';

await import('@busline/adapter-memory');

describe('redelivery limit', () => {
  it('deliveryCount > maxAttempts: dead-lettered with attempts = deliveryCount - 1, the handler not run', async () => {
    const memory = { broker: `redelivery-limit-${process.pid}` };
    const a = await createEventBus({ type: 'memory', memory });
    const b = await createEventBus({ type: 'memory', memory });
    await a.start();
    await b.start();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    // A's handler never finishes: its delivery ends unsettled when A closes.
    await a.subscribe('orders', () => {
      started();
      return new Promise<never>(() => undefined);
    }, { group: 'g', retry: { maxAttempts: 1 } });
    await a.publish('orders', { n: 1 });
    await running;

    const ranOnB: unknown[] = [];
    const dead: { attempts: number; error: string }[] = [];
    b.on('deadLetter', (e) => dead.push({ attempts: e.attempts, error: e.error }));
    await b.subscribe('orders', (payload) => void ranOnB.push(payload), { group: 'g', retry: { maxAttempts: 1 } });
    await a.close({ timeoutMs: 50 });

    const deadline = Date.now() + 10_000;
    while (dead.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(dead).toHaveLength(1);
    expect(dead[0]!.attempts).toBe(1);
    expect(dead[0]!.error).toMatch(/delivered 2 times, more than retry.maxAttempts \(1\)/);
    expect(ranOnB, 'the handler never runs on the redelivery').toEqual([]);
    await b.close();
  });
});
