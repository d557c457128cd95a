/**
 * MessageSink.recall through a real bus: the driver (the memory driver, with
 * its sink captured so the test delivers by hand) takes back what has not
 * started, and only running handlers are left to wait for.
 */
import { describe, expect, it } from 'vitest';
import type { DeliveredMessage, Driver, MessageSink } from './driver.js';
import { createEventBus } from './create-event-bus.js';

const { adapter: memory } = await import('@busline/adapter-memory');
let n = 0;

interface Settled {
  id: string;
  how: string;
}

/** A bus whose driver hands its sink to the test instead of to the memory broker. */
async function capturedBus() {
  const real = memory.createDriver(memory.configSchema.parse({ broker: `recall-test-${process.pid}-${++n}` }));
  let sink!: MessageSink;
  const driver: Driver = Object.assign(Object.create(real) as Driver, {
    subscribe(_spec: unknown, s: MessageSink) {
      sink = s;
      return Promise.resolve({ stop: () => Promise.resolve(), close: () => Promise.resolve() });
    },
  });
  const bus = await createEventBus({ type: 'captured', group: 'recall-test' } as never, { adapter: { ...memory, type: 'captured', createDriver: () => driver } });
  await bus.start();
  const settled: Settled[] = [];
  const message = (id: string, key: string): DeliveredMessage => ({
    topic: 't',
    key,
    headers: {},
    body: new TextEncoder().encode(id),
    deliveryCount: 1,
    deliveryId: id,
    ack: () => void settled.push({ id, how: 'ack' }),
    nack: (d) => void settled.push({ id, how: `nack:${d}` }),
    term: () => void settled.push({ id, how: 'term' }),
  });
  return { bus, sink: () => sink, settled, message };
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

async function until(predicate: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('recall (MessageSink.recall)', () => {
  it('hands back every message not started without running it; running handlers finish; messages delivered later run', async () => {
    const { bus, sink, settled, message } = await capturedBus();
    const started: string[] = [];
    const running = new Map<string, () => void>();
    await bus.subscribeWire(
      't',
      async (m) => {
        const id = new TextDecoder().decode(m.body);
        started.push(id);
        const g = gate();
        running.set(id, g.open);
        await g.opened;
      },
      { concurrency: 2 },
    );
    // a1 and b1 run (concurrency 2); a2 waits behind its key, c1 for a free slot.
    sink().deliver([message('a1', 'a'), message('a2', 'a'), message('b1', 'b'), message('c1', 'c')]);
    await until(() => started.length === 2, () => `started ${started.join()}`);
    expect(started).toEqual(['a1', 'b1']);
    sink().recall!();
    running.get('a1')!();
    running.get('b1')!();
    await until(() => settled.length === 4, () => JSON.stringify(settled));
    expect(started, 'nothing recalled started').toEqual(['a1', 'b1']);
    expect(new Map(settled.map((s) => [s.id, s.how]))).toEqual(new Map([['a1', 'ack'], ['b1', 'ack'], ['a2', 'nack:0'], ['c1', 'nack:0']]));
    expect(bus.metrics().driver.recalled).toBe(2);

    sink().deliver([message('a2', 'a')]);
    await until(() => running.has('a2'), () => `started ${started.join()}`);
    running.get('a2')!();
    await until(() => settled.length === 5, () => JSON.stringify(settled));
    expect(settled[4]).toEqual({ id: 'a2', how: 'ack' });
    await bus.close();
  });

  it('a recalled message in a retry backoff is handed back at once, and a running one that fails is handed back instead of retried', async () => {
    const { bus, sink, settled, message } = await capturedBus();
    const attempts: string[] = [];
    let failRunning!: () => void;
    await bus.subscribeWire(
      't',
      async (m, ctx) => {
        const id = new TextDecoder().decode(m.body);
        attempts.push(`${id}@${ctx.attempt}`);
        if (id === 'slow') await new Promise<void>((_, reject) => (failRunning = () => reject(new Error('fails while recalled'))));
        else throw new Error('transient');
      },
      { concurrency: 4, retry: { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000 } },
    );
    sink().deliver([message('backoff', 'x'), message('slow', 'y')]);
    await until(() => attempts.length === 2 && failRunning !== undefined, () => attempts.join());
    const t0 = Date.now();
    sink().recall!();
    await until(() => settled.some((s) => s.id === 'backoff'), () => JSON.stringify(settled));
    expect(Date.now() - t0, 'the 60 s backoff was not waited out').toBeLessThan(5_000);
    failRunning();
    await until(() => settled.length === 2, () => JSON.stringify(settled));
    expect(settled).toEqual([
      { id: 'backoff', how: 'nack:0' },
      { id: 'slow', how: 'nack:0' },
    ]);
    expect(attempts, 'no retry ran').toEqual(['backoff@1', 'slow@1']);
    await bus.close();
  });
});
