/**
 * A partitioned consumer group the way it runs in production: a three-node
 * JetStream cluster, an R3 topic with 6 partitions, and member processes of
 * one group. While 24 keys flow, a member is added, one is stopped (SIGTERM),
 * one is killed (kill -9), and the stream's leader node is killed. Core's
 * OrderChecker judges every handling of every process together: no key is
 * ever handled in two places at once, first handlings follow publish order,
 * nothing is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemberProcess, OrderChecker, runWithConcurrency, waitFor, type MemberSpec } from '@busline/conformance';
import { admin, type Admin, Buses, serverPins, SHARED_URL, SKIP, streamOf, topicName, waitForR3Placement } from './helpers.js';
import { PrivateNatsCluster, type PrivateNatsServer } from './nats-server.js';
import { durableNameFor } from '../src/names.js';
import { partitionDurable } from '../src/partition-layout.js';
import { pinHolder } from '../src/consumer-pin.js';

const KEYS = 24;
const PER_KEY = 60;
const PARTITIONS = 6;

// Partitions need a server that pins (≥ 2.11); `pnpm test:nats-min` runs this file on an older one.
const PINS = !SKIP && (await serverPins(SHARED_URL));

describe.skipIf(!PINS)('nats: partitioned group of member processes on a 3-node cluster (own servers)', () => {
  let cluster: PrivateNatsCluster;
  const buses = new Buses();
  beforeAll(async () => {
    cluster = await PrivateNatsCluster.start('pgroup');
    const a = await admin(cluster.nodes[0]!.url);
    try {
      await waitForR3Placement(a.jsm);
    } finally {
      await a.close();
    }
  }, 90_000);
  afterAll(async () => {
    await buses.closeAll();
    await cluster?.stop();
  }, 60_000);

  it('member added, one stopped, one killed, the stream leader killed: no key twice at once, first handlings in order, nothing lost', async () => {
    const servers = cluster.nodes.map((n) => n.url);
    const nats = { servers, reconnect: { timeWaitMs: 100, jitterMs: 50 } };
    const topic = topicName('pgroup');
    const stream = streamOf(topic);
    const publisher = await buses.make(servers[0]!, { publish: { timeoutMs: 30_000 }, nats });
    await publisher.configureTopic(topic, { persistence: 'persistent', partitions: PARTITIONS, replicas: 3 });
    const a = await admin(servers[0]!);
    const info = await a.info(stream);
    expect(info.config.subject_transform?.dest, 'the stream partitions by key').toContain(`partition(${PARTITIONS},1)`);

    const checker = new OrderChecker();
    const spec: MemberSpec = {
      config: { type: 'nats', url: servers[0], nats },
      adapterModule: new URL('../dist/index.js', import.meta.url).href,
      topic,
      group: `pg${Date.now().toString(36)}`,
      handlerMs: 3,
      failPercent: 3,
    };
    let n = 0;
    const start = () => MemberProcess.start(`member-${n++}`, spec, checker, 60_000);
    const members = await Promise.all([start(), start(), start()]);
    let leader: PrivateNatsServer | undefined;
    try {
      const keys = Array.from({ length: KEYS }, (_, i) => `acct-${i}`);
      const total = KEYS * PER_KEY;
      const publishing = runWithConcurrency(KEYS, KEYS, async (k) => {
        const key = keys[k]!;
        for (let seq = 0; seq < PER_KEY; seq++) {
          await publisher.publish(topic, { key, seq }, { aggregateId: key });
          checker.publishedOne(key);
        }
      });
      const at = (fraction: number, what: string) =>
        waitFor(() => checker.handledCount >= total * fraction, { timeoutMs: 120_000, intervalMs: 50, message: () => `handled ${checker.handledCount} of ${total} before ${what}` });

      await at(0.15, 'adding a member');
      members.push(await start());
      await at(0.3, 'stopping a member');
      await members[0]!.stop();
      await at(0.45, 'killing a member');
      await members[1]!.kill();
      await at(0.6, 'killing the stream leader');
      const name = (await a.info(stream)).cluster?.leader ?? '';
      leader = cluster.node(name);
      expect(leader, `stream leader "${name}" is one of ours`).toBeDefined();
      await leader!.stopProcess('SIGKILL');
      await publishing;
      await waitFor(() => checker.complete(), { timeoutMs: 150_000, intervalMs: 100, message: () => `handled ${checker.handledCount} of ${total}` }).catch(async (error: unknown) => {
        throw new Error(`${String(error)}\n${await diagnose(a, stream, durableNameFor(spec.group, topic, false), checker, members)}`);
      });
      checker.assertHeld();
      const report = checker.report();
      process.stdout.write(`partitioned group: ${JSON.stringify(report)}\n`);
    } finally {
      await Promise.all(members.map((m) => m.stop()));
      if (leader) await leader.startProcess();
      await a.close();
    }
  }, 420_000);
});

/** What a stalled run left behind: the messages never handled, the members' errors, each partition consumer's state. */
async function diagnose(a: Admin, stream: string, durable: string, checker: OrderChecker, members: MemberProcess[]): Promise<string> {
  const lines = [`missing: ${checker.report().missing.slice(0, 12).join(', ')}`];
  for (const m of members) if (m.errors.length > 0) lines.push(`${m.name} errors: ${m.errors.slice(-5).join(' | ')}`);
  for (let p = 0; p < PARTITIONS; p++) {
    const name = partitionDurable(durable, p, PARTITIONS);
    const c = await a.jsm.consumers.info(stream, name).catch((error: unknown) => String(error));
    lines.push(
      typeof c === 'string'
        ? `${name}: ${c}`
        : `${name}: pending ${c.num_pending}, ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}, waiting ${c.num_waiting}, ` +
            `delivered ${c.delivered.stream_seq}, ack floor ${c.ack_floor.stream_seq}, leader ${c.cluster?.leader ?? '?'}, pin ${pinHolder(c) ?? 'none'}`,
    );
  }
  return lines.join('\n');
}
