/**
 * A message delivered more than `retry.maxAttempts` times, every earlier
 * delivery ended unsettled (its handler's process died, or the bus lost it),
 * is dead-lettered without running the handler again — where the driver's
 * `deliveryCount` counts only such deliveries (`capabilities.redeliveryLimit`,
 * Kafka's attempt ledger). Where it counts every redelivery, give-backs
 * included (the memory broker, NATS), the redelivered message runs again.
 * Shown on the in-memory broker, with and without the capability.
 */
import { describe, expect, it } from 'vitest';
import { createEventBus } from './create-event-bus.js';
import type { AdapterModule } from './driver.js';

const { adapter: memory } = await import('@busline/adapter-memory');

/** The memory adapter, its driver declaring `redeliveryLimit`. */
const limited: AdapterModule<any> = {
  ...memory,
  createDriver(section) {
    const driver = memory.createDriver(section);
    return new Proxy(driver, {
      get: (target, name, receiver) => (name === 'capabilities' ? { ...target.capabilities, redeliveryLimit: true } : Reflect.get(target, name, receiver)),
    });
  },
};

/** A's handler never finishes, so its delivery ends unsettled when A closes; B gets the redelivery (deliveryCount 2). */
async function redeliveredOnce(adapter: AdapterModule<any>, label: string) {
  const memoryConfig = { broker: `redelivery-limit-${label}-${process.pid}` };
  const a = await createEventBus({ type: 'memory', memory: memoryConfig, logger: false }, { adapter });
  const b = await createEventBus({ type: 'memory', memory: memoryConfig, logger: false }, { adapter });
  await a.start();
  await b.start();
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
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
  while (dead.length === 0 && ranOnB.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  await b.close();
  return { dead, ranOnB };
}

describe('redelivery limit', () => {
  it('capabilities.redeliveryLimit, deliveryCount > maxAttempts: dead-lettered with attempts = deliveryCount - 1, the handler not run', async () => {
    const { dead, ranOnB } = await redeliveredOnce(limited, 'on');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.attempts).toBe(1);
    expect(dead[0]!.error).toMatch(/delivered 2 times, more than retry.maxAttempts \(1\)/);
    expect(ranOnB, 'the handler never runs on the redelivery').toEqual([]);
  });

  it('without it (every redelivery counted, give-backs too): the redelivered message runs again', async () => {
    const { dead, ranOnB } = await redeliveredOnce(memory, 'off');
    expect(dead).toEqual([]);
    expect(ranOnB).toEqual([{ n: 1 }]);
  });
});
