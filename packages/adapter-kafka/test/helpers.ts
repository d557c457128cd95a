/** Shared by the broker-backed tests: the broker address, skip flag, admin client and bus factory. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { createEventBus, type BusConfigInput, type EventBus } from '@busline/core';
import kafkajs, { type Admin } from 'kafkajs';
import { adapter } from '../src/index.js';

export const BROKERS = process.env.BUSLINE_KAFKA_BROKERS ?? '127.0.0.1:9092';
/** `BUSLINE_BROKERS=none` runs without brokers: broker-backed suites are skipped. */
export const NO_BROKER = process.env.BUSLINE_BROKERS === 'none';

const CLIENTS = ['kafkajs', 'kafka-ts'] as const;
const chosenClient = process.env.BUSLINE_KAFKA_PRODUCER_CLIENT;
if (chosenClient && !(CLIENTS as readonly string[]).includes(chosenClient)) {
  throw new Error(`BUSLINE_KAFKA_PRODUCER_CLIENT must be one of ${CLIENTS.join(', ')}, got "${chosenClient}"`);
}
/** `BUSLINE_KAFKA_PRODUCER_CLIENT=kafkajs|kafka-ts` publishes through that client in every bus the tests make; unset, the config's default. */
export const PRODUCER_CLIENT = chosenClient as (typeof CLIENTS)[number] | undefined;

/** `kafka` with `producer.client` set from BUSLINE_KAFKA_PRODUCER_CLIENT (a client the section names itself wins). */
export function withProducerClient<T extends object>(kafka?: T): T {
  const section = (kafka ?? {}) as T & { producer?: object };
  if (PRODUCER_CLIENT === undefined) return section;
  return { ...section, producer: { client: PRODUCER_CLIENT, ...section.producer } };
}

export function unique(label: string): string {
  return `bl-kafka-${label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function newAdmin(): Admin {
  return new kafkajs.Kafka({ brokers: BROKERS.split(','), clientId: 'busline-test-admin', logLevel: kafkajs.logLevel.NOTHING }).admin();
}

export function kafkaBus(config: Omit<BusConfigInput, 'url' | 'type'> = {}): Promise<EventBus> {
  return createEventBus({ url: `kafka://${BROKERS}`, ...config, kafka: withProducerClient(config.kafka) }, { adapter });
}

/**
 * What one describe block needs on the shared broker: an admin client, buses
 * that are closed afterwards, and a list of the topics it made, deleted
 * afterwards (only those: other runs share the broker).
 */
export function kafkaFixture() {
  const buses: EventBus[] = [];
  const topics: string[] = [];
  let admin: Admin | undefined;
  beforeAll(async () => {
    admin = newAdmin();
    await admin.connect();
  });
  afterAll(async () => {
    await Promise.allSettled(buses.map((b) => b.close({ timeoutMs: 5_000 })));
    if (topics.length) await admin?.deleteTopics({ topics }).catch(() => undefined);
    await admin?.disconnect();
  });
  return {
    topics,
    get admin(): Admin {
      return admin!;
    },
    /** A bus (closed after the block) with quick commits, so tests can watch committed offsets. */
    async bus(config: Omit<BusConfigInput, 'url' | 'type'> = {}, commitIntervalMs?: number): Promise<EventBus> {
      const b = await kafkaBus(commitIntervalMs === undefined ? config : { ...config, kafka: { brokers: [BROKERS], consumer: { commitIntervalMs } } });
      buses.push(b);
      return b;
    },
  };
}

/**
 * Creates a topic and waits until every partition has a leader. kafkajs's own `waitForLeaders`
 * gives up when a KRaft broker briefly answers UNKNOWN_TOPIC_OR_PARTITION for a topic it has just
 * created (seen under load in CI), so this polls the metadata with a deadline instead.
 */
export async function createTopic(
  admin: Admin,
  spec: { topic: string; numPartitions: number; replicationFactor?: number; configEntries?: { name: string; value: string }[] },
): Promise<void> {
  await admin.createTopics({ topics: [spec], waitForLeaders: false });
  let seen = 'no metadata yet';
  await until(
    async () => {
      try {
        const { topics } = await admin.fetchTopicMetadata({ topics: [spec.topic] });
        const partitions = topics[0]?.partitions ?? [];
        seen = `${partitions.filter((p) => p.leader >= 0).length} of ${spec.numPartitions} partitions with a leader`;
        return partitions.length >= spec.numPartitions && partitions.every((p) => p.leader >= 0);
      } catch (error) {
        seen = String(error);
        return false;
      }
    },
    30_000,
    () => `topic ${spec.topic} to have a leader for every partition (${seen})`,
  );
}

/** Committed offsets of `group` for `topic`, by partition (-1 = none). */
export async function committed(admin: Admin, group: string, topic: string): Promise<Map<number, number>> {
  const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  return new Map((entry?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
}

/** Where each event id (ce_id header; ce-id on records the tests write raw) of `topic` is, read with a raw kafkajs consumer. */
export async function locate(topic: string, total: number): Promise<Map<string, { partition: number; offset: number }>> {
  const where = new Map<string, { partition: number; offset: number }>();
  const reader = new kafkajs.Kafka({ brokers: BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING }).consumer({
    groupId: unique('g-reader'),
    maxWaitTimeInMs: 100,
  });
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ partition, message }) => {
      const headers = message.headers!;
      where.set((headers.ce_id ?? headers['ce-id'])!.toString(), { partition, offset: Number(message.offset) });
    },
  });
  await until(() => where.size >= total, 60_000, () => `read ${where.size} of ${total} records of ${topic}`);
  await reader.disconnect();
  return where;
}

/** Polls `predicate` until true or the deadline (a wait on a condition, never a sleep as synchronization). */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The headers of a binary-mode record as busline writes it (CloudEvents attributes, content type, trace context), for encoder and decoder tests. */
export const ENVELOPE_HEADERS: Readonly<Record<string, string>> = {
  ce_specversion: '1.0',
  ce_id: '01934f1e-7c4a-7d2b-9f3e-2b8c1d4e5f60',
  ce_type: 'order.placed',
  ce_source: 'billing',
  ce_time: '2026-12-02T03:04:05.678Z',
  'content-type': 'application/json',
  ce_subject: 'acct-7',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
};
