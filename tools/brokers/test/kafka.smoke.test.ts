import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs from 'kafkajs';
import { requireEnv, skipBroker, unique } from './env.js';

const { Kafka, logLevel } = kafkajs;
type Admin = ReturnType<InstanceType<typeof Kafka>['admin']>;

/** ApiVersions v0 straight from the broker: api key -> [min, max] */
async function apiVersions(hostPort: string): Promise<Map<number, [number, number]>> {
  const [host, port] = hostPort.split(':');
  const clientId = Buffer.from('busline-smoke');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length);
  let o = body.writeInt16BE(18, 0); // ApiVersions
  o = body.writeInt16BE(0, o); // version 0
  o = body.writeInt32BE(7, o); // correlation id
  o = body.writeInt16BE(clientId.length, o);
  clientId.copy(body, o);
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length);
  const socket = new Socket();
  const response = await new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    socket.setTimeout(10_000, () => reject(new Error('ApiVersions timed out')));
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) resolve(buf.subarray(4, 4 + buf.readInt32BE(0)));
    });
    socket.connect(Number(port), host!, () => socket.write(Buffer.concat([size, body])));
  }).finally(() => socket.destroy());
  expect(response.readInt32BE(0)).toBe(7);
  expect(response.readInt16BE(4)).toBe(0); // error code
  const n = response.readInt32BE(6);
  const versions = new Map<number, [number, number]>();
  for (let i = 0, p = 10; i < n; i++, p += 6) {
    versions.set(response.readInt16BE(p), [response.readInt16BE(p + 2), response.readInt16BE(p + 4)]);
  }
  return versions;
}

describe.skipIf(skipBroker('kafka'))('Apache Kafka broker (scripts/brokers)', () => {
  let brokers: string[];
  let kafka: InstanceType<typeof Kafka>;
  let admin: Admin;
  const topic = unique('smoke');
  const groupId = unique('smoke-group');

  beforeAll(async () => {
    brokers = requireEnv('BUSLINE_KAFKA_BROKERS').split(',');
    kafka = new Kafka({ clientId: 'busline-brokers-smoke', brokers, logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.deleteGroups([groupId]).catch(() => undefined);
    await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('is a real Kafka 4.x KRaft broker', async () => {
    const cluster = await admin.describeCluster();
    expect(cluster.brokers.length).toBeGreaterThanOrEqual(1);
    expect(cluster.controller).not.toBeNull();

    const versions = await apiVersions(brokers[0]!);
    // Kafka 4.0 removed Fetch v0-v3, ListOffsets v0 and CreateTopics v0-v1 (KIP-896);
    // a 3.x broker still offers them
    expect(versions.get(1)?.[0]).toBeGreaterThanOrEqual(4);
    expect(versions.get(2)?.[0]).toBeGreaterThanOrEqual(1);
    expect(versions.get(19)?.[0]).toBeGreaterThanOrEqual(2);
    // and it still speaks the versions kafkajs 2.2 uses (Produce v7, Fetch v11, JoinGroup v5)
    expect(versions.get(0)?.[1]).toBeGreaterThanOrEqual(7);
    expect(versions.get(1)?.[1]).toBeGreaterThanOrEqual(11);
    expect(versions.get(11)?.[1]).toBeGreaterThanOrEqual(5);
    const expected = process.env.BUSLINE_KAFKA_VERSION;
    if (expected) expect(expected).toMatch(/^4\./);
  });

  it('creates a topic, produces, and consumes in a consumer group with committed offsets', async () => {
    // Not kafkajs's waitForLeaders: it gives up when a KRaft broker briefly answers UNKNOWN_TOPIC_OR_PARTITION
    // for a topic it has just created; the producer below retries until the leaders are there.
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: false })).toBe(true);
    expect(await admin.listTopics()).toContain(topic);

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sent = Array.from({ length: 10 }, (_, i) => ({ key: `key-${i % 3}`, value: `order-${i}` }));
    const meta = await producer.send({ topic, acks: -1, messages: sent });
    expect(meta.every((m) => m.errorCode === 0)).toBe(true);
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`consumed ${got.length} of 10 messages in 30s`)), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message.value!.toString());
          if (got.length === sent.length) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    expect(got.sort()).toEqual(sent.map((m) => m.value).sort());
    const { groups } = await admin.describeGroups([groupId]);
    expect(groups[0]?.state).toBe('Stable');
    await consumer.stop(); // commits the processed offsets
    await consumer.disconnect();

    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
    const committed = offsets[0]!.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
    expect(committed).toBe(10);
  });
});
