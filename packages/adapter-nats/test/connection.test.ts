/**
 * Connection life on a server of the test's own: events on disconnect and
 * reconnect, subscriptions that resume, close() that does not hang on a dead
 * server, and resources that stay flat as topics grow.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Collector, waitFor } from '@busline/conformance';
import type { ConnectionState } from '@busline/core';
import { Buses, SKIP, topicName } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

function activeHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

describe.skipIf(SKIP)('nats: connection life (own server)', () => {
  const buses = new Buses();
  let server: PrivateNatsServer;
  beforeAll(async () => {
    server = await PrivateNatsServer.start('connection');
  }, 60_000);
  afterEach(() => buses.closeAll());
  afterAll(async () => {
    await server?.stop();
  }, 60_000);

  it('reports disconnected → reconnecting → connected, and live subscriptions resume after a restart', async () => {
    const states: [ConnectionState, string | undefined][] = [];
    const bus = await buses.make(server.url, { nats: { reconnect: { timeWaitMs: 100, jitterMs: 0 } } });
    bus.on('connection', (state: ConnectionState, detail?: string) => states.push([state, detail]));
    const topic = topicName('conn-resume');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const before = (await bus.publishBatch(topic, Array.from({ length: 20 }, (_, i) => ({ payload: { i } })))).ids;
    await got.waitForIds(before, 10_000);

    await server.restart('SIGTERM');
    const after: string[] = [];
    for (let i = 0; i < 20; i++) {
      for (;;) {
        try {
          after.push((await bus.publish(topic, { i, after: true })).id);
          break;
        } catch (error) {
          if ((error as { retryable?: boolean }).retryable !== true) throw error;
        }
      }
    }
    await got.waitForIds(after, 30_000, 'messages after the restart');
    const sequence = states.map(([s]) => s);
    expect(sequence).toContain('disconnected');
    expect(sequence.indexOf('reconnecting')).toBeGreaterThan(sequence.indexOf('disconnected'));
    expect(sequence.lastIndexOf('connected')).toBeGreaterThan(sequence.indexOf('reconnecting'));
    expect(states.find(([s]) => s === 'disconnected')?.[1]).toMatch(/127\.0\.0\.1/);
  }, 60_000);

  it('close() while the server is down resolves promptly', async () => {
    const bus = await buses.make(server.url, { nats: { reconnect: { timeWaitMs: 100, jitterMs: 0 } } });
    const topic = topicName('conn-close');
    await bus.subscribe(topic, async () => {});
    await bus.publish(topic, { x: 1 });
    const down = new Promise<void>((resolve) => bus.on('connection', (s: ConnectionState) => s === 'disconnected' && resolve()));
    await server.stopProcess('SIGKILL');
    try {
      await down;
      const started = Date.now();
      await buses.close(bus);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await server.startProcess();
    }
  }, 60_000);

  it('handles stay flat as subscribed topics grow (one socket, at most two timers)', async () => {
    const baseline = activeHandles();
    const bus = await buses.make(server.url);
    let handled = 0;
    let subscribed = 0;
    for (const target of [1, 30]) {
      for (; subscribed < target; subscribed++) {
        const topic = topicName(`conn-flat${subscribed}`);
        await bus.subscribe(topic, async () => void handled++);
        await bus.publish(topic, { i: subscribed });
      }
      const expected = subscribed;
      await waitFor(() => handled >= expected, { timeoutMs: 10_000, message: 'messages handled' });
      // What this bus adds: one socket; the consumers' shared 1 s timer and the publisher's deadline
      // sweep (only while publishes are pending); nothing per topic.
      await waitFor(
        () => {
          const now = activeHandles();
          return (now.TCPSocketWrap ?? 0) - (baseline.TCPSocketWrap ?? 0) === 1 && (now.Timeout ?? 0) - (baseline.Timeout ?? 0) <= 2;
        },
        { timeoutMs: 5_000, message: () => `handles with ${expected} topics: ${JSON.stringify(activeHandles())} (before the bus: ${JSON.stringify(baseline)})` },
      );
    }
  }, 60_000);
});
