// What a scenario runs against: the busline API on one adapter, or a raw
// broker client doing the same work with nothing in between (the baselines).
//
// Every target has the same shape:
//   open(run)            create the run's topics, connect a producer and a consumer,
//                        and prove the consumer is attached (one warm-up message per topic)
//   publish(t, key, b)   resolves once the broker durably accepted the message
//   close()              close clients (what a service does at shutdown)
//   cleanup()            delete the run's topics / streams / groups (best effort)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { createEventBus } from '@busline/core';
import { adapter as memoryAdapter, dropMemoryBroker } from '@busline/adapter-memory';
import { adapter as natsAdapter, streamNameFor, natsConfigSchema } from '@busline/adapter-nats';
import { adapter as kafkaAdapter, kafkaConfigSchema } from '@busline/adapter-kafka';
import { connect as natsConnect, nuid } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import kafkajs from 'kafkajs';
import { encodePayload, WARMUP_INDEX, nowMs } from './workload.mjs';

const require = createRequire(import.meta.url);

/**
 * @typedef {{ tag: string, topics: string[], keys: number, partitions: number, onMessage: (bytes: Uint8Array) => void,
 *   size: number, memoryMaxMessages?: number, warmupTimeoutMs?: number }} RunSpec
 * @typedef {{ natsUrl: string, kafkaBrokers: string[], bus: Record<string, any> }} Endpoints
 */

export const TARGETS = /** @type {const} */ ({
  memory: { id: 'memory', label: 'busline memory', broker: 'memory', kind: 'busline' },
  nats: { id: 'nats', label: 'busline NATS', broker: 'nats', kind: 'busline' },
  'nats-raw': { id: 'nats-raw', label: 'raw nats.js', broker: 'nats', kind: 'raw' },
  kafka: { id: 'kafka', label: 'busline Kafka', broker: 'kafka', kind: 'busline' },
  'kafka-raw': { id: 'kafka-raw', label: 'raw kafkajs', broker: 'kafka', kind: 'raw' },
});

/** Versions of the client libraries, read from their package.json. */
export function clientVersions() {
  const v = (name) => {
    try {
      return require(`${name}/package.json`).version;
    } catch {
      // packages whose "exports" hide package.json: walk up from the entry point
      try {
        let dir = path.dirname(require.resolve(name));
        for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
          const file = path.join(dir, 'package.json');
          if (fs.existsSync(file)) {
            const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
            if (pkg.name === name) return pkg.version;
          }
        }
      } catch {}
      return undefined;
    }
  };
  return { kafkajs: v('kafkajs'), '@nats-io/transport-node': v('@nats-io/transport-node'), '@nats-io/jetstream': v('@nats-io/jetstream'), 'hdr-histogram-js': v('hdr-histogram-js') };
}

/** Waits until every topic's warm-up message arrived. */
async function awaitWarmups(count, topics, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (count() < topics.length) {
    if (Date.now() > deadline) throw new Error(`${what}: consumer not attached after ${timeoutMs} ms (${count()} of ${topics.length} warm-up messages)`);
    await sleep(10);
  }
}

// ------------------------------------------------------------------ busline

/**
 * The busline API, as a service uses it: one bus publishes, another (its own
 * consumer group) subscribes to every topic with per-key ordering.
 * @param {'memory'|'nats'|'kafka'} broker
 * @param {Endpoints} endpoints
 */
export function buslineTarget(broker, endpoints) {
  const adapter = { memory: memoryAdapter, nats: natsAdapter, kafka: kafkaAdapter }[broker];
  /** @type {any} */ let producer;
  /** @type {any} */ let consumer;
  /** @type {RunSpec} */ let spec;
  let memoryBroker = '';
  const errors = [];
  return {
    ...TARGETS[broker],
    errors,
    /** @param {RunSpec} run */
    async open(run) {
      spec = run;
      memoryBroker = `bench-${run.tag}`;
      const url = broker === 'memory' ? `memory://${memoryBroker}` : broker === 'nats' ? endpoints.natsUrl : `kafka://${endpoints.kafkaBrokers.join(',')}`;
      const base = { url, source: 'bench-compare', ...endpoints.bus };
      producer = await createEventBus({ ...base, group: `bc-${run.tag}-p` }, { adapter });
      consumer = await createEventBus({ ...base, group: `bc-${run.tag}-c` }, { adapter });
      for (const bus of [producer, consumer]) bus.on('error', (e, ctx) => errors.length < 20 && errors.push(`${ctx}: ${e.message}`));
      await producer.start();
      for (const topic of run.topics) {
        /** @type {Record<string, number>} */
        const options = {};
        if (broker === 'kafka') options.partitions = run.partitions;
        if (broker === 'memory' && run.memoryMaxMessages) options.maxMessages = run.memoryMaxMessages;
        await producer.configureTopic(topic, options);
      }
      let warm = 0;
      for (const topic of run.topics) {
        await consumer.subscribe(
          topic,
          (payload) => {
            if (payload[8] === 0xff && payload[9] === 0xff && payload[10] === 0xff && payload[11] === 0xff) warm++;
            run.onMessage(payload);
          },
          { ordering: 'key' },
        );
      }
      await consumer.start();
      for (const topic of run.topics) await producer.publish(topic, encodePayload(run.size, 0, 0, WARMUP_INDEX, nowMs()), { aggregateId: 'warmup' });
      await awaitWarmups(() => warm, run.topics, run.warmupTimeoutMs ?? 60_000, this.label);
    },
    /** @param {string} topic @param {string} key @param {Uint8Array} bytes */
    publish(topic, key, bytes) {
      return producer.publish(topic, bytes, { aggregateId: key });
    },
    metrics() {
      return { producer: producer?.metrics(), consumer: consumer?.metrics() };
    },
    async close() {
      await producer?.close({ timeoutMs: 30_000 });
      await consumer?.close({ timeoutMs: 30_000 });
    },
    async cleanup() {
      if (broker === 'memory') dropMemoryBroker(memoryBroker);
      else if (broker === 'nats') await deleteNatsStreams(endpoints.natsUrl, spec.topics.map((t) => streamNameFor(t, 'BL_')));
      else await deleteKafkaTopics(endpoints.kafkaBrokers, spec.topics, [`bc-${spec.tag}-c`]);
    },
    settings() {
      return describeBusline(broker, consumer, endpoints);
    },
  };
}

function describeBusline(broker, consumer, endpoints) {
  const c = consumer?.config;
  if (!c) return {};
  const out = {
    'bus pool concurrency / maxPending': `${c.concurrency} / ${c.maxPending}`,
    'subscription concurrency / maxInFlight': `${c.subscription.concurrency} / ${c.subscription.maxInFlight}`,
    ordering: 'per key (aggregateId)',
  };
  if (broker === 'nats') {
    const n = natsConfigSchema.parse(endpoints.bus.nats ?? {});
    Object.assign(out, { 'publish window': n.publishWindow, 'pull batch': n.pullBatch, 'ack mode': n.ackMode, storage: n.storage, 'duplicate window ms': n.duplicateWindowMs });
  }
  if (broker === 'kafka') {
    const k = kafkaConfigSchema.parse({ brokers: endpoints.kafkaBrokers, ...(endpoints.bus.kafka ?? {}) });
    Object.assign(out, {
      acks: k.producer.acks,
      idempotent: k.producer.idempotent,
      'linger ms': k.producer.lingerMs,
      'max batch messages / bytes': `${k.producer.maxBatchMessages} / ${k.producer.maxBatchBytes}`,
      'batches in flight': k.producer.maxInFlightBatches,
      'partitions consumed concurrently': k.consumer.partitionsConsumedConcurrently,
      'commit interval ms': k.consumer.commitIntervalMs,
    });
  }
  return out;
}

// ------------------------------------------------------------------ raw NATS

/**
 * Raw nats.js with the same durability as the adapter: a file-backed R1 stream
 * per topic, `js.publish` (with a Nats-Msg-Id, as busline sends one) awaited
 * per message with many in flight, and a durable pull consumer per stream
 * (`consume()`, batches of 500, explicit ack of every message, max_ack_pending
 * 1,000 like busline's default maxInFlight).
 * @param {Endpoints} endpoints
 */
export function rawNatsTarget(endpoints) {
  /** @type {any} */ let nc;
  /** @type {any} */ let js;
  const streams = [];
  const iterators = [];
  const errors = [];
  return {
    ...TARGETS['nats-raw'],
    errors,
    /** @param {RunSpec} run */
    async open(run) {
      nc = await natsConnect({ servers: endpoints.natsUrl.replace(/^nats:\/\//, '').split(','), name: `bench-raw-${run.tag}` });
      const jsm = await jetstreamManager(nc);
      js = jetstream(nc);
      let warm = 0;
      for (const topic of run.topics) {
        const name = `RAW_${topic}`;
        await jsm.streams.add({ name, subjects: [topic], storage: 'file', num_replicas: 1, duplicate_window: 120_000_000_000 });
        streams.push(name);
        await jsm.consumers.add(name, { durable_name: 'bench', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 1_000 });
        const consumer = await js.consumers.get(name, 'bench');
        const messages = await consumer.consume({
          max_messages: 500,
          callback: (m) => {
            const data = m.data;
            if (data[8] === 0xff && data[9] === 0xff && data[10] === 0xff && data[11] === 0xff) warm++;
            run.onMessage(data);
            m.ack();
          },
        });
        iterators.push(messages);
      }
      for (const topic of run.topics) await js.publish(topic, encodePayload(run.size, 0, 0, WARMUP_INDEX, nowMs()), { msgID: nuid.next() });
      await awaitWarmups(() => warm, run.topics, run.warmupTimeoutMs ?? 60_000, this.label);
    },
    publish(topic, _key, bytes) {
      return js.publish(topic, bytes, { msgID: nuid.next() });
    },
    serverVersion: () => nc?.info?.version,
    async close() {
      for (const it of iterators) await it.close?.().catch(() => undefined);
      await nc?.drain().catch(() => nc?.close());
    },
    async cleanup() {
      await deleteNatsStreams(endpoints.natsUrl, streams);
    },
    settings: () => ({ publish: 'js.publish per message with Nats-Msg-Id, awaited, many in flight', consume: 'consume({ max_messages: 500 }), m.ack() each', 'max_ack_pending': 1000, storage: 'file, R1' }),
  };
}

async function deleteNatsStreams(url, names) {
  if (names.length === 0) return;
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, '').split(','), name: 'bench-cleanup' });
  try {
    const jsm = await jetstreamManager(nc);
    for (const name of names) await jsm.streams.delete(name).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

/** The server's version from its INFO. */
export async function natsServerVersion(url) {
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, '').split(','), name: 'bench-info' });
  try {
    return nc.info?.version;
  } finally {
    await nc.close();
  }
}

// ------------------------------------------------------------------ raw Kafka

/**
 * Raw kafkajs with the adapter's durability: idempotent producer, acks=all,
 * one `sendBatch` in flight carrying everything queued meanwhile (up to 10,000
 * messages / ~900 KB, busline's batch limits); a consumer group on all topics
 * with `eachBatch`, 4 partitions consumed concurrently (busline's default),
 * offsets resolved per message and committed by kafkajs.
 * @param {Endpoints} endpoints
 */
export function rawKafkaTarget(endpoints) {
  const kafka = new kafkajs.Kafka({ brokers: endpoints.kafkaBrokers, clientId: 'bench-raw', logLevel: kafkajs.logLevel.NOTHING });
  /** @type {any} */ let producer;
  /** @type {any} */ let consumer;
  /** @type {RunSpec} */ let spec;
  const errors = [];
  /** @type {{ topic: string, message: any, resolve: Function, reject: Function }[]} */
  let queue = [];
  /** @type {NodeJS.Timeout | undefined} */
  let commitTimer;
  let finalCommit = () => Promise.resolve();
  let sending = false;
  const MAX_MESSAGES = 10_000;
  const MAX_BYTES = 900_000;

  async function pump() {
    if (sending) return;
    sending = true;
    try {
      while (queue.length > 0) {
        let bytes = 0;
        let n = 0;
        while (n < queue.length && n < MAX_MESSAGES && bytes < MAX_BYTES) bytes += queue[n++].message.value.length + 70;
        const batch = queue.slice(0, n);
        queue = queue.slice(n);
        /** @type {Map<string, any[]>} */
        const byTopic = new Map();
        for (const item of batch) {
          let list = byTopic.get(item.topic);
          if (!list) byTopic.set(item.topic, (list = []));
          list.push(item.message);
        }
        try {
          await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
          for (const item of batch) item.resolve();
        } catch (error) {
          for (const item of batch) item.reject(error);
        }
      }
    } finally {
      sending = false;
    }
  }

  return {
    ...TARGETS['kafka-raw'],
    errors,
    /** @param {RunSpec} run */
    async open(run) {
      spec = run;
      await createKafkaTopics(kafka, run.topics, run.partitions);
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
      await producer.connect();
      consumer = kafka.consumer({ groupId: `bc-${run.tag}-raw`, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
      await consumer.connect();
      await consumer.subscribe({ topics: run.topics, fromBeginning: true });
      let warm = 0;
      // Offsets are committed every second (like busline's commitIntervalMs), not after every batch:
      // kafkajs's per-batch auto-commit costs a round trip per batch and ~80 ms of latency under load.
      /** @type {Map<string, { topic: string, partition: number, offset: string }>} */
      const positions = new Map();
      const commit = () => {
        if (positions.size === 0) return Promise.resolve();
        const list = [...positions.values()];
        positions.clear();
        return consumer.commitOffsets(list).catch((e) => errors.length < 20 && errors.push(`commit: ${e.message}`));
      };
      commitTimer = setInterval(commit, 1_000);
      finalCommit = commit;
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          for (const message of batch.messages) {
            const v = message.value;
            if (v[8] === 0xff && v[9] === 0xff && v[10] === 0xff && v[11] === 0xff) warm++;
            run.onMessage(v);
            resolveOffset(message.offset);
          }
          const last = batch.messages[batch.messages.length - 1];
          if (last) positions.set(`${batch.topic}:${batch.partition}`, { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() });
          await heartbeat();
        },
      });
      await Promise.all(run.topics.map((topic) => this.publish(topic, 'warmup', encodePayload(run.size, 0, 0, WARMUP_INDEX, nowMs()))));
      await awaitWarmups(() => warm, run.topics, run.warmupTimeoutMs ?? 60_000, this.label);
    },
    publish(topic, key, bytes) {
      return new Promise((resolve, reject) => {
        queue.push({ topic, message: { key, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) }, resolve, reject });
        if (!sending) queueMicrotask(pump);
      });
    },
    async close() {
      clearInterval(commitTimer);
      await finalCommit();
      await consumer?.disconnect().catch(() => undefined);
      await producer?.disconnect().catch(() => undefined);
    },
    async cleanup() {
      await deleteKafkaTopics(endpoints.kafkaBrokers, spec.topics, [`bc-${spec.tag}-raw`]);
    },
    settings: () => ({ producer: 'idempotent, acks=all, maxInFlightRequests 1, one sendBatch in flight (<= 10,000 msgs / ~900 KB)', consume: 'eachBatch, partitionsConsumedConcurrently 4, resolveOffset per message, commitOffsets every 1 s' }),
  };
}

async function createKafkaTopics(kafka, topics, partitions) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })), waitForLeaders: true });
    for (const topic of topics) {
      for (let i = 0; ; i++) {
        const meta = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined);
        const ps = meta?.topics?.[0]?.partitions;
        if (ps?.length === partitions && ps.every((p) => p.leader >= 0)) break;
        if (i > 200) throw new Error(`kafka topic ${topic} has no leaders`);
        await sleep(50);
      }
    }
  } finally {
    await admin.disconnect();
  }
}

async function deleteKafkaTopics(brokers, topics, groups) {
  const kafka = new kafkajs.Kafka({ brokers, clientId: 'bench-cleanup', logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteGroups(groups).catch(() => undefined);
    await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
  } finally {
    await admin.disconnect();
  }
}

/**
 * @param {string} id one of TARGETS
 * @param {Endpoints} endpoints
 */
export function makeTarget(id, endpoints) {
  switch (id) {
    case 'memory':
    case 'nats':
    case 'kafka':
      return buslineTarget(id, endpoints);
    case 'nats-raw':
      return rawNatsTarget(endpoints);
    case 'kafka-raw':
      return rawKafkaTarget(endpoints);
    default:
      throw new Error(`unknown target ${id}`);
  }
}
