/**
 * Kill a consuming bus (SIGKILL, nothing flushed) in the middle of a run; a
 * new bus in the same group must then receive every message the first did
 * not finish handling. With cumulative acks (AckPolicy all) this is the test
 * that no ack-all ever covered a message that was still in flight, waiting
 * for a nak redelivery, or never delivered — including the first bus's
 * leftovers, which the server redelivers only after the ack wait.
 */
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Collector, uniqueName, waitFor } from '@busline/conformance';
import { sharedServerFixture, SHARED_URL, SKIP, streamOf, topicName } from './helpers.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crash-consumer.mjs');

describe.skipIf(SKIP)('nats: a consumer killed mid-run loses nothing', () => {
  const f = sharedServerFixture();
  const { buses } = f;

  for (const ackMode of ['cumulative', 'explicit'] as const) {
    it(`${ackMode} acks: the next bus gets everything the killed one did not handle`, async () => {
      const topic = topicName(`crash-${ackMode}`);
      const group = uniqueName('crash');
      const ackWaitMs = 2_000;
      const publisher = await buses.make(SHARED_URL);
      const total = 3_000;
      const ids: string[] = [];
      for (let i = 0; i < total; i += 500) {
        const r = await publisher.publishBatch(topic, Array.from({ length: 500 }, (_, j) => ({ payload: { i: i + j }, aggregateId: `k${(i + j) % 50}` })));
        expect(r.failed).toEqual([]);
        ids.push(...r.ids);
      }

      const first = new Collector();
      const child = fork(fixture, [SHARED_URL, topic, group, ackMode, String(ackWaitMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        await new Promise<void>((resolve, reject) => {
          child.on('message', (m) => {
            if (m === 'ready') return;
            first.add(String(m), null);
            if (first.size === 1_000) resolve();
          });
          child.once('exit', (code) => reject(new Error(`consumer exited early (${code})`)));
        });
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      const handledByFirst = first.size;
      expect(handledByFirst).toBeGreaterThanOrEqual(1_000);
      expect(handledByFirst).toBeLessThan(total);

      const second = new Collector();
      const bus = await buses.make(SHARED_URL, { group, nats: { ackMode, ackWaitMs } });
      await bus.subscribe(topic, async (_p, ctx) => second.add(ctx.envelope.id, null), { concurrency: 16 });
      const notHandled = ids.filter((id) => !first.has(id));
      await second.waitForIds(notHandled, 30_000, `messages the killed bus (${handledByFirst} handled) did not handle`);
      const stream = streamOf(topic);
      expect((await f.admin.jsm.consumers.info(stream, group)).config.ack_policy).toBe(ackMode === 'cumulative' ? 'all' : 'explicit');
      // And in the end everything is acknowledged: the ack floor at the last message, and (explicit) nothing
      // pending. With AckPolicy all, nats-server 2.9 was seen (about 1 run in 5 under heavy CPU load) to keep
      // one message pending *below* the ack floor: it redelivers it every ack wait and ignores acks for it
      // (their sequence is below the floor). The adapter drops those redeliveries (the message was handled:
      // counted as redelivered_settled), so only the server's pending count shows it.
      let last = '';
      await waitFor(
        async () => {
          const info = await f.admin.jsm.consumers.info(stream, group);
          last = JSON.stringify({ pending: info.num_ack_pending, floor: info.ack_floor, delivered: info.delivered, redelivered: info.num_redelivered, driver: bus.metrics().driver });
          return info.ack_floor.stream_seq === total && (ackMode === 'cumulative' ? info.num_ack_pending <= 1 : info.num_ack_pending === 0);
        },
        { timeoutMs: 30_000, intervalMs: 200, message: () => `the consumer to have acknowledged everything: ${last}` },
      );
    }, 90_000);
  }
});
