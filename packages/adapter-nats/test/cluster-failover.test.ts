/**
 * A three-node JetStream cluster (private servers, routed on loopback) with an
 * R3 topic, and the stream's leader SIGKILLed in the middle of a run: every
 * acknowledged publish is stored once, each caller's publishes are stored in
 * its call order, and a subscriber with per-key order handles every one, in
 * order, through the leader change. On the fast path and the public-API
 * fallbacks.
 */
import { describe, expect, it } from 'vitest';
import { type BuslineError } from '@busline/core';
import { waitFor } from '@busline/conformance';
import { ownServerFixture, PATHS, SKIP, streamOf, topicName, usePath, waitForR3Placement } from './helpers.js';
import { PrivateNatsCluster, type PrivateNatsServer } from './nats-server.js';

const CALLERS = 32;
const PER_CALLER = 150;
const KILL_AFTER = 1_500;

describe.skipIf(SKIP).each(PATHS)('nats: 3-node cluster, R3 topic, stream leader killed mid-run (own servers, $label)', ({ internals }) => {
  usePath(internals);
  const f = ownServerFixture(
    () => PrivateNatsCluster.start('cluster'),
    (a) => waitForR3Placement(a.jsm),
  );
  const { buses } = f;

  it('nothing acknowledged is lost or stored twice; per-caller store order and per-key handling order hold', async () => {
    const topic = topicName('cluster-r3');
    const stream = streamOf(topic);
    const options = { publish: { timeoutMs: 30_000 }, nats: { publishWindow: 256, reconnect: { timeWaitMs: 100, jitterMs: 50 } } };
    const publisher = await buses.make(f.server.url, options);
    expect((await publisher.configureTopic(topic, { replicas: 3 })).action).toBe('created');
    const before = await f.admin.info(stream);
    expect(before.config.num_replicas, 'the topic option became the stream config').toBe(3);
    expect(before.cluster?.replicas ?? [], 'two followers beside the leader').toHaveLength(2);
    // The actual config reported back to core's provisioner: asking again for R3 finds no difference.
    expect(await publisher.configureTopic(topic, { replicas: 3 }, { onMismatch: 'fail' })).toMatchObject({ differences: [] });

    // Each handled message: caller (= key) and its position in that caller's sequence.
    const handled = new Map<string, number[]>();
    const seen = new Set<string>();
    const subscriber = await buses.make(f.server.url, { ...options, nats: { ...options.nats, ackWaitMs: 3_000 } });
    await subscriber.subscribe(
      topic,
      (payload, ctx) => {
        const { c, i } = payload as { c: number; i: number };
        if (seen.has(ctx.envelope.id)) return; // a redelivery after the leader change (at-least-once)
        seen.add(ctx.envelope.id);
        const list = handled.get(`c${c}`) ?? [];
        list.push(i);
        handled.set(`c${c}`, list);
      },
      { ordering: 'key' },
    );

    let acked = 0;
    let killed: { node: PrivateNatsServer; done: Promise<void> } | undefined;
    const ackedIds: string[][] = Array.from({ length: CALLERS }, () => []);
    const failures: BuslineError[] = [];
    await Promise.all(
      Array.from({ length: CALLERS }, async (_, c) => {
        for (let i = 0; i < PER_CALLER; i++) {
          try {
            const { id } = await publisher.publish(topic, { c, i }, { aggregateId: `c${c}` });
            ackedIds[c]!.push(id);
          } catch (error) {
            failures.push(error as BuslineError);
          }
          if (++acked === KILL_AFTER && killed === undefined) {
            const leader = (await f.admin.info(stream)).cluster?.leader ?? '';
            const node = f.server.node(leader);
            if (!node) throw new Error(`stream leader "${leader}" is not one of ${f.server.nodes.map((n) => n.name).join(', ')}`);
            killed = { node, done: node.stopProcess('SIGKILL') };
          }
        }
      }),
    );
    expect(killed, 'the leader was killed mid-run').toBeDefined();
    await killed!.done;
    expect(failures.map((e) => `${e.code}: ${e.message}`).slice(0, 3), `${failures.length} publishes failed`).toEqual([]);
    // The publisher saw the failover: messages re-sent after an overdue ack or a reconnect, or retried after a 503.
    const m = publisher.metrics().driver;
    const recovered = (m.publish_ack_overdue_resent ?? 0) + (m.publish_resent ?? 0) + (m.publish_unavailable_retried ?? 0);
    expect(recovered, JSON.stringify(m)).toBeGreaterThan(0);
    process.stdout.write(`cluster failover: ${JSON.stringify(m)}\n`);

    const after = await f.admin.info(stream);
    expect(after.cluster?.leader, 'a new leader took over').not.toBe(killed!.node.name);
    const stored = await f.admin.storedIds(stream);
    expect(new Set(stored).size, 'no message stored twice').toBe(stored.length);
    expect(stored).toHaveLength(CALLERS * PER_CALLER);
    // Each caller awaited its publishes one by one: the stream holds them in that order.
    const position = new Map(stored.map((id, at) => [id, at]));
    for (const ids of ackedIds) {
      const at = ids.map((id) => position.get(id) ?? -1);
      expect(at.every((p, k) => p >= 0 && (k === 0 || p > at[k - 1]!)), 'a caller\'s publishes are stored in call order').toBe(true);
    }

    await waitFor(() => seen.size === CALLERS * PER_CALLER, {
      timeoutMs: 60_000,
      intervalMs: 100,
      message: () => `the subscriber to handle all ${CALLERS * PER_CALLER} messages (handled ${seen.size})`,
    });
    for (let c = 0; c < CALLERS; c++) {
      expect(handled.get(`c${c}`), `key c${c} handled once each, in publish order`).toEqual(Array.from({ length: PER_CALLER }, (_, i) => i));
    }

    // The killed node comes back and catches up: the stream is whole on every replica again.
    await killed!.node.startProcess();
    await waitFor(
      async () => {
        const info = await f.admin.info(stream);
        return (info.cluster?.replicas ?? []).length === 2 && info.cluster!.replicas!.every((r) => r.current);
      },
      { timeoutMs: 60_000, intervalMs: 250, message: 'the restarted node to catch up' },
    );
  }, 180_000);
});
