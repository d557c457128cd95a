/** Option objects of publish and subscribe: unknown names, bad values, and errors that say what to fix. */
import { describe, expect, it } from 'vitest';
import { createEventBus } from './create-event-bus.js';
import { ErrorCode, type BuslineError } from './errors.js';
import type { EventBus } from './event-bus.js';

let n = 0;
async function startedBus(): Promise<EventBus> {
  const bus = await createEventBus({ type: 'memory', memory: { broker: `publish-options-test-${process.pid}-${++n}` } });
  await bus.start();
  return bus;
}
const failure = (p: Promise<unknown>): Promise<BuslineError> => p.then(() => Promise.reject(new Error('resolved')), (e: unknown) => e as BuslineError);

describe('publish options', () => {
  it('refuses an unknown option, naming it and what was probably meant', async () => {
    const bus = await startedBus();
    const error = await failure(bus.publish('orders', { id: 1 }, { key: 'order-1' } as never));
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    expect(error.message).toContain('publish to "orders": unknown option "key" (did you mean aggregateId');
    expect(bus.metrics().published).toBe(0);
    expect((await failure(bus.publishBatch('orders', [{ payload: 1, partition: 2 } as never]).then((r) => Promise.reject(r.failed[0]!.error)))).message).toContain(
      'publishBatch item 0: unknown option "partition"',
    );
    expect((await failure(bus.publishBatch('orders', [], { timeout: 5 } as never))).message).toContain('unknown option "timeout" (did you mean timeoutMs?)');
    expect((await failure(bus.publishEnvelope('orders', {} as never, { ttl: 1 } as never))).code).toBe(ErrorCode.ConfigInvalid);
    expect((await failure(bus.publish('orders', 1, 5 as never))).message).toContain('must be an object');
    await bus.close();
  });

  it('refuses a timeout that is not a positive number of milliseconds', async () => {
    const bus = await startedBus();
    for (const timeoutMs of [-1, 0, Number.NaN, Infinity, '5']) {
      const error = await failure(bus.publish('orders', 1, { timeoutMs } as never));
      expect(error.code).toBe(ErrorCode.ConfigInvalid);
      expect(error.message).toContain('publish timeoutMs must be a positive number of milliseconds');
    }
    await bus.close();
  });
});

describe('subscribe options', () => {
  it('lists each bad option on a line of its own, not a JSON dump', async () => {
    const bus = await startedBus();
    const error = await failure(bus.subscribe('orders', () => undefined, { concurrency: 0, retry: { maxAttempts: 'x' }, colour: 'red' } as never));
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    expect(error.message).toMatch(/^invalid subscribe options for "orders"\n {2}- /);
    expect(error.message).toMatch(/\n {2}- concurrency: .+/);
    expect(error.message).toMatch(/\n {2}- retry\.maxAttempts: .+/);
    expect(error.message).toContain('colour');
    expect(error.message).not.toContain('"code"');
    await bus.close();
  });
});
