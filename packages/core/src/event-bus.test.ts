import { describe, expect, it } from 'vitest';
import type { Driver, DriverContext, PublishCallOptions } from './driver.js';
import { createEventBus } from './create-event-bus.js';
import { ErrorCode } from './errors.js';

const { adapter: memory } = await import('@busline/adapter-memory');
let n = 0;
const broker = () => `event-bus-test-${process.pid}-${++n}`;

function collector(expected: number) {
  const got: unknown[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  return {
    got,
    all,
    handler: (payload: unknown) => {
      got.push(payload);
      if (got.length === expected) done();
    },
  };
}

describe('EventBus lifecycle', () => {
  it('opens a subscription made while start() is running', async () => {
    const bus = await createEventBus({ type: 'memory', memory: { broker: broker() } });
    const c = collector(1);
    const starting = bus.start();
    const sub = bus.subscribe('during-start', c.handler);
    await starting;
    await sub;
    await bus.publish('during-start', { x: 1 });
    await c.all;
    expect(c.got).toEqual([{ x: 1 }]);
    await bus.close();
  });

  it('does not open a subscription unsubscribed before start', async () => {
    const name = broker();
    const bus = await createEventBus({ type: 'memory', memory: { broker: name } });
    const early = await bus.subscribe('t', () => {
      throw new Error('must not run');
    });
    await early.unsubscribe();
    const c = collector(1);
    await bus.subscribe('t', c.handler, { group: 'other' });
    await bus.start();
    await bus.publish('t', 1);
    await c.all;
    expect(bus.metrics().failed).toBe(0);
    await bus.close();
  });

  it('keeps subscriptions made before a failed start and opens them when start is retried', async () => {
    const real = memory.createDriver(memory.configSchema.parse({ broker: broker() }));
    let failures = 1;
    const flaky: Driver = Object.assign(Object.create(real) as Driver, {
      connect(context: DriverContext) {
        if (failures-- > 0) return Promise.reject(new Error('broker down'));
        return real.connect(context);
      },
    });
    const bus = await createEventBus({ type: 'flaky' } as never, { adapter: { ...memory, type: 'flaky', createDriver: () => flaky } });
    const c = collector(1);
    await bus.subscribe('t', c.handler);
    await expect(bus.start()).rejects.toThrow('broker down');
    await bus.start();
    await bus.publish('t', 'after retry');
    await c.all;
    expect(c.got).toEqual(['after retry']);
    await bus.close();
  });

  it('rejects (never throws synchronously) on bad input, before start and after close', async () => {
    const bus = await createEventBus({ type: 'memory', memory: { broker: broker() } });
    const before = bus.publish('t', 1);
    await expect(before).rejects.toMatchObject({ code: ErrorCode.NotStarted });
    await bus.start();
    await expect(bus.publish('bad topic', 1)).rejects.toMatchObject({ code: ErrorCode.TopicInvalid });
    await expect(bus.publish('t', 1, { aggregateId: 'bad key' })).rejects.toMatchObject({ code: ErrorCode.EnvelopeInvalid });
    await bus.close();
    await expect(bus.publish('t', 1)).rejects.toMatchObject({ code: ErrorCode.Closed });
  });

  it('a dead-letter publish that fails is retried and the original is not acknowledged meanwhile', async () => {
    const real = memory.createDriver(memory.configSchema.parse({ broker: broker() }));
    let dlqFailures = 3;
    const driver: Driver = Object.assign(Object.create(real) as Driver, {
      publish(topic: string, messages: never[], options: never) {
        if (topic.endsWith('.dlq') && dlqFailures-- > 0) return Promise.reject(new Error('dlq unavailable'));
        return real.publish(topic, messages, options);
      },
    });
    const bus = await createEventBus({ type: 'dlqfail', retry: { maxAttempts: 1, initialDelayMs: 1, jitter: 0 } } as never, {
      adapter: { ...memory, type: 'dlqfail', createDriver: () => driver },
    });
    const errors: string[] = [];
    bus.on('error', (e) => errors.push(e.message));
    const dead = new Promise((resolve) => bus.once('deadLetter', resolve));
    await bus.subscribe('t', () => {
      throw new Error('always');
    });
    const dlq = collector(1);
    await bus.start();
    await bus.subscribeWire('t.dlq', (m) => dlq.handler(m.headers['busline-dlq-error']));
    await bus.publish('t', 'x');
    await dead;
    await dlq.all;
    expect(dlq.got).toEqual(['always']);
    expect(errors.filter((e) => e.includes('dlq unavailable')).length).toBe(3);
    expect(bus.metrics().deadLettered).toBe(1);
    await bus.close();
  });
});

describe('publishBatch with { atomic: true }', () => {
  it('refuses the batch as UNSUPPORTED when configureTopic makes its topic ephemeral before it reaches the driver', async () => {
    const real = memory.createDriver(memory.configSchema.parse({ broker: broker() }));
    const atomicCalls: string[] = [];
    const driver: Driver = Object.assign(Object.create(real) as Driver, {
      publish(topic: string, messages: never[], options: PublishCallOptions) {
        if (options.atomic === true) atomicCalls.push(options.topic.persistence);
        return real.publish(topic, messages, options);
      },
    });
    const bus = await createEventBus({ type: 'spied' } as never, { adapter: { ...memory, type: 'spied', createDriver: () => driver } });
    await bus.start();
    // The topic's first publish waits for its ensure; the configureTopic lands in that wait, after publishBatch checked the topic.
    const batch = bus.publishBatch('t', [{ payload: 1 }, { payload: 2 }], { atomic: true });
    const configured = bus.configureTopic('t', { persistence: 'ephemeral' });
    const result = await batch;
    await configured;
    expect(atomicCalls, 'atomic calls the driver got, by the persistence they were given').not.toContain('ephemeral');
    expect(result.published).toBe(0);
    expect(result.failed.map((f) => f.error.code)).toEqual([ErrorCode.Unsupported, ErrorCode.Unsupported]);
    expect(result.failed[0]!.error.message).toMatch(/"t" is ephemeral.*publish without `atomic`/);
    await bus.close();
  });
});
