/**
 * A publish is reported successful only once the stream holds it: the set of
 * acknowledged event ids is compared with what the stream stores (its
 * Nats-Msg-Id headers), with the publish window full, and with the server
 * restarted (SIGTERM) or killed (SIGKILL) in the middle of a run. Messages in
 * flight when the connection drops are re-sent after the reconnect; the
 * message id makes the server store each once. Everything runs twice: on the
 * fast path (client internals) and on the public-API fallbacks.
 */
import { describe, expect, it } from 'vitest';
import { BuslineError, type EventBus } from '@busline/core';
import type { NatsDriver } from '../src/index.js';
import { ownServerFixture, sharedServerFixture, PATHS, SHARED_URL, SKIP, streamOf, topicName, usePath, watchPublishCalls } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

interface Outcome {
  ok: string[];
  failed: BuslineError[];
}

/** `total` publishes, `callers` at a time, each caller awaiting its own; calls `onAcked(n)` after each success. */
async function publishMany(bus: EventBus, topic: string, total: number, callers: number, onAcked?: (n: number) => void): Promise<Outcome> {
  const out: Outcome = { ok: [], failed: [] };
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < total) {
        const i = next++;
        try {
          out.ok.push((await bus.publish(topic, { i }, { aggregateId: `k${i % 100}` })).id);
          onAcked?.(out.ok.length);
        } catch (error) {
          out.failed.push(error as BuslineError);
        }
      }
    }),
  );
  return out;
}

function expectStoredExactly(acked: string[], stored: string[]): void {
  const storedSet = new Set(stored);
  expect(storedSet.size, 'no message stored twice').toBe(stored.length);
  const missing = acked.filter((id) => !storedSet.has(id));
  expect(missing.slice(0, 5), `${missing.length} acknowledged publishes are not in the stream`).toEqual([]);
}

describe.skipIf(SKIP).each(PATHS)('nats: a publish succeeds only when stored ($label)', ({ internals }) => {
  usePath(internals);
  const f = sharedServerFixture();
  const { buses } = f;

  it('with the window full: callers wait, at most `publishWindow` are in flight, every success is stored', async () => {
    const window = 8;
    const topic = topicName('dur-window');
    const bus = await buses.make(SHARED_URL, { nats: { publishWindow: window } });
    await bus.configureTopic(topic, {});
    const driver = bus.driver as NatsDriver;
    const publishCalls = watchPublishCalls(driver);
    let maxInFlight = 0;
    let maxWaiting = 0;
    const all = Array.from({ length: 4_000 }, (_, i) =>
      bus.publish(topic, { i }, { aggregateId: `k${i % 10}` }).then((r) => {
        const p = driver.publishing;
        maxInFlight = Math.max(maxInFlight, p.inFlight);
        maxWaiting = Math.max(maxWaiting, p.waiting);
        return r.id;
      }),
    );
    const p = driver.publishing;
    expect(p.inFlight).toBeLessThanOrEqual(window);
    expect(p.waiting, 'callers queued behind the full window').toBeGreaterThan(0);
    const ids = await Promise.all(all);
    expect(maxInFlight).toBeLessThanOrEqual(window);
    expect(maxWaiting).toBeGreaterThan(0);
    const stored = await f.admin.storedIds(streamOf(topic));
    expectStoredExactly(ids, stored);
    expect(stored.length).toBe(ids.length);
    const perMessage = publishCalls.filter((s) => s === topic).length;
    if (internals) expect(perMessage, 'fast path: messages written through the protocol writer, not publish()').toBe(0);
    else expect(perMessage, 'fallback: one publish() per message').toBe(ids.length);
  });

  it('publishes from one caller are stored in call order (5,000 fired without awaiting)', async () => {
    const topic = topicName('dur-order');
    const bus = await buses.make(SHARED_URL, { nats: { publishWindow: 64 } });
    await bus.configureTopic(topic, {});
    const calls: Promise<{ id: string }>[] = [];
    for (let i = 0; i < 5_000; i++) calls.push(bus.publish(topic, { i }, { aggregateId: 'one-key' }));
    const ids = (await Promise.all(calls)).map((r) => r.id);
    expect(await f.admin.storedIds(streamOf(topic))).toEqual(ids);
  });

  it('a batch resolves when every message is acked and reports failures by index', async () => {
    const topic = topicName('dur-batch');
    const bus = await buses.make(SHARED_URL, { nats: { publishWindow: 100 } });
    await bus.configureTopic(topic, {});
    const r = await bus.publishBatch(topic, Array.from({ length: 2_500 }, (_, i) => ({ payload: { i }, aggregateId: i === 7 ? 'bad key' : `k${i}` })));
    expect(r.published).toBe(2_499);
    expect(r.failed.map((f) => f.index)).toEqual([7]);
    expect(await f.admin.count(streamOf(topic))).toBe(2_499);
  });
});

describe.skipIf(SKIP).each(PATHS)('nats: server restart in the middle of publishing (own server, $label)', ({ internals }) => {
  usePath(internals);
  const f = ownServerFixture(() => PrivateNatsServer.start('durability'));
  const { buses } = f;

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal}: nothing acknowledged is lost, nothing is stored twice, nothing fails needlessly`, async () => {
      const topic = topicName(`dur-${signal.toLowerCase()}`);
      const bus = await buses.make(f.server.url, { publish: { timeoutMs: 30_000 }, nats: { publishWindow: 256, reconnect: { timeWaitMs: 100, jitterMs: 50 } } });
      const states: string[] = [];
      bus.on('connection', (state: string) => states.push(state));
      await bus.configureTopic(topic, {});
      const total = 20_000;
      let restarting: Promise<void> | undefined;
      const result = await publishMany(bus, topic, total, 1_000, (n) => {
        if (n === 5_000) restarting = f.server.restart(signal);
      });
      await restarting;
      expect(result.failed.map((e) => `${e.code}: ${e.message}`).slice(0, 3), `${result.failed.length} publishes failed`).toEqual([]);
      expect(result.ok).toHaveLength(total);
      const stored = await f.admin.storedIds(streamOf(topic));
      expectStoredExactly(result.ok, stored);
      expect(stored.length).toBe(total);
      expect(states).toContain('disconnected');
      expect(states.lastIndexOf('connected')).toBeGreaterThan(states.indexOf('disconnected'));
      expect(bus.metrics().driver.publish_resent ?? 0, 'in-flight messages were re-sent after the reconnect').toBeGreaterThan(0);
    }, 120_000);
  }

  it('a publish during an outage longer than its timeout fails with a retryable BROKER_UNAVAILABLE', async () => {
    const topic = topicName('dur-outage');
    const bus = await buses.make(f.server.url, { publish: { timeoutMs: 1_000 }, nats: { reconnect: { timeWaitMs: 100, jitterMs: 0 } } });
    await bus.configureTopic(topic, {});
    await bus.publish(topic, { before: true });
    const disconnected = new Promise<void>((resolve) => bus.on('connection', (s: string) => s === 'disconnected' && resolve()));
    await f.server.stopProcess('SIGTERM');
    try {
      await disconnected;
      const started = Date.now();
      const error = await bus.publish(topic, { during: true }).then(
        () => undefined,
        (e: unknown) => e as BuslineError,
      );
      expect(error?.code).toBe('BROKER_UNAVAILABLE');
      expect(error?.retryable).toBe(true);
      expect(error?.message).toMatch(/not connected to NATS/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      await f.server.startProcess();
    }
    // The same bus publishes again once reconnected.
    for (;;) {
      try {
        await bus.publish(topic, { after: true });
        break;
      } catch (error) {
        if ((error as BuslineError).retryable !== true) throw error;
      }
    }
  }, 60_000);
});
