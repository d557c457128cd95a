import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { requireEnv, skipBroker, unique } from './env.js';

describe.skipIf(skipBroker('nats'))('NATS JetStream broker (scripts/brokers)', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const stream = unique('SMOKE').toUpperCase().replace(/-/g, '_');
  const subject = `${stream.toLowerCase()}.orders`;

  beforeAll(async () => {
    const url = requireEnv('BUSLINE_NATS_URL');
    nc = await connect({ servers: url.split(','), name: 'busline-brokers-smoke', timeout: 10_000 });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc?.drain();
  });

  it('is a real nats-server >= 2.9 with JetStream enabled', async () => {
    const info = nc.info;
    expect(info?.version).toMatch(/^\d+\.\d+\.\d+/);
    const [major, minor] = (info?.version ?? '0.0').split('.').map(Number);
    expect(major! > 2 || (major === 2 && minor! >= 9)).toBe(true);
    expect(info?.jetstream).toBe(true);
    const account = await jsm.getAccountInfo();
    expect(account.limits).toBeDefined();
  });

  it('creates a stream, publishes with acks and de-duplication, and consumes with explicit acks', async () => {
    const si = await jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.>`], storage: StorageType.File, num_replicas: 1 });
    expect(si.config.name).toBe(stream);

    const js = jetstream(nc);
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await js.publish(subject, `order-${i}`, { msgID: `id-${i}` }));
    expect(acks.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    const dup = await js.publish(subject, 'order-0 again', { msgID: 'id-0' });
    expect(dup.duplicate).toBe(true);

    await jsm.consumers.add(stream, { durable_name: 'smoke', ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get(stream, 'smoke');
    const got: string[] = [];
    while (got.length < 5) {
      const batch = await consumer.fetch({ max_messages: 5, expires: 2_000 });
      for await (const m of batch) {
        got.push(m.string());
        await m.ackAck();
      }
    }
    expect(got).toEqual(['order-0', 'order-1', 'order-2', 'order-3', 'order-4']);
    const ci = await consumer.info();
    expect(ci.num_ack_pending).toBe(0);
    expect(ci.delivered.stream_seq).toBe(5);
  });
});
