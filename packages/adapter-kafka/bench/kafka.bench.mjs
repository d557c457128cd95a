#!/usr/bin/env node
/**
 * pnpm bench:kafka — busline's Kafka adapter against its raw clients (kafka-ts publishing, the
 * default; BENCH_PRODUCER_CLIENT=kafkajs publishes through kafkajs, busline and raw alike; kafkajs
 * consuming) and Kafka's
 * own Java producer, in one run on the same broker (BUSLINE_KAFKA_BROKERS,
 * default 127.0.0.1:9092). Every message has a 256-byte payload; every
 * producer uses acks=all (-1) and, like busline, the idempotent producer.
 *
 * Measured:
 *   1. publish  — busline `bus.publish` with up to BENCH_WINDOW publishes outstanding
 *   2. raw      — the producer client's send, one batch at a time, the batch size busline's
 *                 batcher actually used, the same records busline writes in each
 *                 content mode (key, 256-byte value and the envelope headers, or the
 *                 event as JSON value and one header) built in the timed loop (the
 *                 target), and once more pre-built before the clock starts (the client alone)
 *   3. raw      — the producer client's send awaited per message (BENCH_AWAITED messages only: it is slow)
 *               The raw rows run in this process, after the adapter loaded, so with its
 *               replacements of the clients' record encoders (and kafkajs's decoder) in place:
 *               they measure the client as busline runs it. `pnpm bench:kafka-clients` measures
 *               the clients as published.
 *   4. consume  — busline subscribe with per-key order (1,000 keys, handler checks the
 *                 order) vs a raw kafkajs `eachBatch` consumer doing the same check on
 *                 the same records (structured: it parses the JSON value for the payload);
 *                 and vs bench/minimal-reader.mjs (no Kafka client: Fetch requests by hand, key, value
 *                 and header strings per record, the same check): what a record costs Node itself;
 *                 BENCH_CONSUME_MESSAGES records (default: as many as ConsumerPerformance reads),
 *                 published by busline once, before the first consume run. CPU per message is
 *                 printed for all threads and for the main thread alone, which bounds the rate
 *   5. latency  — publish-to-handle p50/p99 at a fixed offered rate (open loop:
 *                 measured from each message's scheduled send time, hdr-histogram; beside it
 *                 scheduled send to publish acknowledged, to show which side a tail formed on), with
 *                 the consumer in a process of its own (as a consuming service runs), then
 *                 in the publisher's process (sharing its event loop)
 *   6. ceiling  — Kafka's org.apache.kafka.tools.ProducerPerformance and ConsumerPerformance (Java) on the broker,
 *                 once in every round beside busline's runs of that round (best of the rounds, and each
 *                 round's own ratio printed too); ConsumerPerformance also reads the records busline wrote
 *                 (its key, headers or JSON event), for what their shape costs Kafka's own consumer;
 *                 and ProducerPerformance at the latency run's offered rate,
 *                 whose own send-to-acknowledgement p50/p99 is printed as the latency reference
 *
 * Throughput figures are the best of BENCH_ROUNDS (5) rounds, with busline and
 * raw taking turns going first, so neither a burst of load from elsewhere on
 * the machine nor JIT warm-up decides a ratio.
 *
 * Knobs: BENCH_MESSAGES (100000: each publish run), BENCH_CONSUME_MESSAGES (BENCH_JAVA_MESSAGES: each consume run), BENCH_AWAITED (5000), BENCH_WINDOW (2000),
 * BENCH_ROUNDS (5), BENCH_PARTITIONS (6), BENCH_RATE (msg/s offered in the latency run; default half the
 * best busline publish rate measured in this run, in the bus default content mode: the issue's "half the
 * max rate"), BENCH_LATENCY_SECONDS (10),
 * BENCH_LATENCY_RATES (default a quarter and a tenth of the latency rate: more offered rates, comma-separated,
 * each measured with the consumer in its own process beside Java's ProducerPerformance at the same rate, to show
 * up to which rate the p99 target holds here), BENCH_ONLY=latency (only the latency runs; needs BENCH_RATE),
 * BENCH_JAVA_MESSAGES (500000: the Java tools' own runs, long enough for the JVM to warm up; at
 * 100,000 records ProducerPerformance measured 39k msg/s where 500,000 gave 127k),
 * BUSLINE_KAFKA_LIBS (directory of Kafka's jars; default <repo>/.cache/kafka-*\/libs),
 * BENCH_NODE (24: the bench re-runs itself on a pinned Node 24 from scripts/node-runtime; system: on the
 * node that started it).
 *
 * BENCH_CONTENT_MODE=binary|structured|both (both): the CloudEvents content mode(s)
 * busline publishes in (`contentMode`; binary: attributes as ce_ headers,
 * structured: the whole event as JSON in the value, one header). Each mode
 * gets its own busline publish and consume rows, and raw kafkajs rows sending
 * and reading the same records as that mode, each with its ratio; a last line
 * gives structured ÷ binary. Latency runs in the bus default mode.
 *
 * BENCH_TELEMETRY=1|metrics|tracing: busline publish and consume run a second
 * time each round with that telemetry on (OpenTelemetry SDK providers, no
 * exporter; tools/bench-telemetry.mjs), and off vs on is printed at the end.
 * The topic both consume runs read is written with telemetry on, so its
 * records carry trace context as a traced producer's would.
 * Bench topics are deleted at the end.
 */
import { fork, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
// The adapter before kafkajs, as in an application that uses kafkajs only through busline: the adapter's
// kafkajs fixes that must precede kafkajs's loading (src/before-kafkajs.ts) are in place.
import { adapter } from '../dist/index.js';
import kafkajs from 'kafkajs';
import hdr from 'hdr-histogram-js';
import { buildEnvelope, createEventBus, encodeEnvelope, KAFKA_BINDING } from '@busline/core';
import { consumerPerformance, producerPerformance } from './java-tools.mjs';
import { pinnedNode } from './node-runtime.mjs';
import { openProducer as openKafkaTsProducer } from './clients/kafka-ts.mjs';
import { brokerCpuReader, mainThreadCpuReader } from '../../../tools/brokers/broker-cpu.mjs';
import { minimalRead } from './minimal-reader.mjs';
import { benchTelemetry, overheadLine, telemetryFloor } from '../../../tools/bench-telemetry.mjs';

/**
 * The Node the bench measures on: BENCH_NODE=24 (default) re-runs this script on scripts/node-runtime's
 * pinned Node 24 (current LTS; the machines' Node 20 is out of support and spends 10-30 % more CPU per
 * message here), BENCH_NODE=system on the node that started it. Its forks (the latency consumer) inherit it.
 */
function benchNode() {
  const wanted = process.env.BENCH_NODE || '24';
  if (wanted !== '24' && wanted !== 'system') throw new Error(`BENCH_NODE must be 24 or system; got "${wanted}"`);
  if (wanted === 'system' || process.versions.node.split('.')[0] === wanted) return undefined;
  return pinnedNode(wanted);
}

// Before any setup below (telemetry providers, the broker CPU reader), so none of it runs twice.
const node = process.env.BENCH_ROLE === undefined ? benchNode() : undefined;
if (node !== undefined) process.exit(spawnSync(node, process.execArgv.concat(fileURLToPath(import.meta.url)), { stdio: 'inherit' }).status ?? 1);

const env = (name, fallback) => (process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name]));
const BROKERS = (process.env.BUSLINE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const N = env('BENCH_MESSAGES', 100_000);
const JAVA_N = Math.max(N, env('BENCH_JAVA_MESSAGES', 500_000));
/** Records each consume run reads: as many as ConsumerPerformance reads, so both runs last about as long. */
const CONSUME_N = env('BENCH_CONSUME_MESSAGES', JAVA_N);
const AWAITED = env('BENCH_AWAITED', 5_000);
const WINDOW = env('BENCH_WINDOW', 2_000);
const PARTITIONS = env('BENCH_PARTITIONS', 6);
const ROUNDS = env('BENCH_ROUNDS', 5);
const RATE_KNOB = env('BENCH_RATE', undefined);
if (RATE_KNOB !== undefined && !(RATE_KNOB > 0)) throw new Error(`BENCH_RATE must be a positive number of msg/s; got "${process.env.BENCH_RATE}"`);
const LATENCY_SECONDS = env('BENCH_LATENCY_SECONDS', 10);
const LADDER_KNOB =
  process.env.BENCH_LATENCY_RATES === undefined
    ? undefined
    : process.env.BENCH_LATENCY_RATES.split(',')
        .filter((x) => x.trim() !== '')
        .map((x) => {
          const n = Number(x);
          if (!(n > 0)) throw new Error(`BENCH_LATENCY_RATES must be a comma-separated list of positive msg/s; got "${process.env.BENCH_LATENCY_RATES}"`);
          return Math.round(n);
        });
const ONLY = process.env.BENCH_ONLY || undefined;
if (ONLY !== undefined && ONLY !== 'latency') throw new Error(`BENCH_ONLY must be latency (or unset); got "${ONLY}"`);
if (ONLY === 'latency' && RATE_KNOB === undefined) throw new Error('BENCH_ONLY=latency needs BENCH_RATE (msg/s): without the throughput rounds there is no measured maximum to halve');
const KEYS = 1_000;
const SIZE = 256;
const TELEMETRY = await benchTelemetry();
/** The producer client busline publishes through (its `producer.client`), and the raw publish rows use. */
const PRODUCER_CLIENT = process.env.BENCH_PRODUCER_CLIENT || 'kafka-ts';
if (!['kafka-ts', 'kafkajs'].includes(PRODUCER_CLIENT)) throw new Error(`BENCH_PRODUCER_CLIENT must be kafka-ts or kafkajs; got "${PRODUCER_CLIENT}"`);
/** Bus config for the chosen producer client. */
const KAFKA_SECTION = { kafka: { brokers: BROKERS, producer: { client: PRODUCER_CLIENT } } };
const MODE_KNOB = process.env.BENCH_CONTENT_MODE || 'both';
if (!['binary', 'structured', 'both'].includes(MODE_KNOB)) throw new Error(`BENCH_CONTENT_MODE must be binary, structured or both; got "${MODE_KNOB}"`);
const MODES = MODE_KNOB === 'both' ? ['binary', 'structured'] : [MODE_KNOB];

const run = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const topic = (label) => `bench-kafka-${label}-${run}`;
const T = {
  ...Object.fromEntries(MODES.flatMap((mode) => [[`ours-${mode}`, topic(`publish-${mode}`)], [`oursMore-${mode}`, topic(`publish-more-${mode}`)], [`raw-${mode}`, topic(`raw-${mode}`)]])),
  awaited: topic('raw-awaited'),
  latency: topic('latency'),
  java: topic('java'),
  javaLatency: topic('java-latency'),
};
const kafka = new kafkajs.Kafka({ brokers: BROKERS, clientId: 'busline-bench', logLevel: kafkajs.logLevel.NOTHING });
const admin = kafka.admin();
const rate = (count, ms) => Math.round((count / ms) * 1000);

/** The broker's CPU time (µs) when scripts/brokers started it here: client and broker share the cores. */
const brokerCpu = brokerCpuReader('kafka', 'kafka');
/** This process's main-thread CPU (µs): a consumer's rate is bounded by it; process.cpuUsage() adds V8's helper threads. */
const mainCpu = mainThreadCpuReader();

const consumeCpuText = (r) => `${r.cpu.toFixed(1)} µs CPU/msg (main thread ${r.main.toFixed(1)})`;

/** Starts a clock; calling the result gives wall ms, this process's CPU µs and the broker's CPU µs since. */
function clock() {
  const c0 = process.cpuUsage();
  const b0 = brokerCpu();
  const t0 = performance.now();
  return () => {
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return { ms, cpu: c.user + c.system, broker: brokerCpu() - b0 };
  };
}
/** A publish result: msg/s and CPU µs per message (ours, the broker's). */
const figures = (count, t, extra = {}) => ({ rate: rate(count, t.ms), cpu: t.cpu / count, broker: t.broker / count, ...extra });
const cpuText = (r) => `${r.cpu.toFixed(1)} µs CPU/msg${Number.isFinite(r.broker) ? `, broker ${r.broker.toFixed(1)} µs/msg` : ''}`;
const log = (...args) => console.error('[bench]', ...args);

/** 256 bytes: key index and per-key sequence in the first 8, the send time (ms, float) in the next 8. */
function payloadOf(keyIndex, seq, sentAt = 0) {
  const bytes = new Uint8Array(SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, keyIndex);
  view.setUint32(4, seq);
  view.setFloat64(8, sentAt);
  return bytes;
}
const readPayload = (bytes) => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { key: view.getUint32(0), seq: view.getUint32(4), sentAt: view.getFloat64(8) };
};

/** Per-key order check shared by every consumer: returns the number of violations. */
function orderChecker() {
  const last = new Int32Array(KEYS).fill(-1);
  let violations = 0;
  return {
    check(key, seq) {
      if (seq !== last[key] + 1 && seq > last[key]) violations++;
      else if (seq <= last[key]) return; // redelivery, not a violation
      last[key] = seq;
    },
    get violations() {
      return violations;
    },
  };
}

/**
 * One consume run's tally, the same for every consumer: the per-key order check, the rate from the first
 * message to the last, and CPU per message over the same span — `cpu` over every thread of this process,
 * `main` over the main thread alone. Connecting and joining a group are left out.
 */
function consumeTally() {
  const order = orderChecker();
  let handled = 0;
  let first = 0;
  let last = 0;
  let c0;
  let m0;
  const cpu = { cpu: NaN, main: NaN };
  return {
    get handled() {
      return handled;
    },
    /** One message's payload; a consumer that stamps once per batch passes `stamp` false and calls stamp(). */
    add(payload, stamp = true) {
      const { key, seq } = readPayload(payload);
      order.check(key, seq);
      if (handled === 0) {
        first = performance.now();
        c0 = process.cpuUsage();
        m0 = mainCpu();
      }
      handled++;
      if (stamp) last = performance.now();
      if (handled === CONSUME_N) {
        const c = process.cpuUsage(c0);
        cpu.cpu = (c.user + c.system) / (CONSUME_N - 1);
        cpu.main = (mainCpu() - m0) / (CONSUME_N - 1);
      }
    },
    stamp() {
      last = performance.now();
    },
    result() {
      return { rate: rate(handled - 1, last - first), ...cpu, violations: order.violations };
    },
  };
}

async function waitUntil(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function createTopics() {
  await admin.connect();
  await admin.createTopics({
    topics: Object.values(T).map((t) => ({ topic: t, numPartitions: PARTITIONS, replicationFactor: 1 })),
    waitForLeaders: false,
  });
  await waitUntil(() => true, 0, '');
  for (const t of Object.values(T)) {
    for (let i = 0; ; i++) {
      const meta = await admin.fetchTopicMetadata({ topics: [t] }).catch(() => undefined);
      if (meta?.topics[0]?.partitions.length === PARTITIONS && meta.topics[0].partitions.every((p) => p.leader >= 0)) break;
      if (i > 100) throw new Error(`topic ${t} has no leaders`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

// ---- 1. busline publish --------------------------------------------------------------

async function benchOursPublish(target, mode, telemetry, count = N) {
  const bus = await createEventBus({ url: `kafka://${BROKERS.join(',')}`, source: 'bench', group: `bench-pub-${run}`, contentMode: mode, ...KAFKA_SECTION, ...(telemetry ? { telemetry } : {}) }, { adapter });
  await bus.start();
  const seqs = new Uint32Array(KEYS);
  await bus.publish(target, payloadOf(0, seqs[0]++), { aggregateId: 'agg-0' }); // connect + metadata
  const batcher = bus.driver.batcher;
  const batchesBefore = batcher.batches;
  const sentBefore = batcher.sentMessages;
  let next = 1;
  let failed = 0;
  const stop = clock();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const key = i % KEYS;
      try {
        await bus.publish(target, payloadOf(key, seqs[key]++), { aggregateId: `agg-${key}` });
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const t = stop();
  const batches = batcher.batches - batchesBefore;
  const avgBatch = Math.round((batcher.sentMessages - sentBefore) / batches);
  await bus.close();
  if (failed) throw new Error(`${failed} busline publishes failed`);
  return figures(count - 1, t, { avgBatch, batches });
}

// ---- 2./3. raw producer client ---------------------------------------------------------------

function rawRecord(i, mode = 'binary') {
  const key = i % KEYS;
  // The record busline itself writes on Kafka in `mode`, so raw and busline rows send the same bytes.
  const wire = encodeEnvelope(buildEnvelope(payloadOf(key, i), { aggregateId: `agg-${key}` }, { type: 'bench.raw', source: 'bench' }), KAFKA_BINDING, mode);
  return { key: `agg-${key}`, value: Buffer.from(wire.body), headers: wire.headers };
}

/** The 256-byte payload of a record busline wrote in `mode` (structured: the event's data_base64). */
const rawPayload = (value, mode) => (mode === 'structured' ? Buffer.from(JSON.parse(value.toString('utf8')).data_base64, 'base64') : value);

/**
 * The chosen producer client alone, configured as busline configures it
 * (idempotent, acks all, the Java partitioner): `send(topic, records)`
 * resolves when the broker acknowledged every record.
 */
async function rawProducer() {
  if (PRODUCER_CLIENT === 'kafka-ts') return openKafkaTsProducer({ brokers: BROKERS });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return { send: (topic, messages) => producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] }), close: () => producer.disconnect() };
}

/**
 * The raw client's send, one batch in flight. `prebuilt`: every record built before the clock
 * starts (the client alone). Otherwise each batch's records — the same key, 256-byte value and
 * envelope headers (event id, time, type...) busline writes — are built inside the timed
 * loop, as an application batching by hand would: the difference to busline is then
 * busline's API and batching, not the data.
 */
async function benchRawSendBatch(batchSize, prebuilt, mode) {
  const target = T[`raw-${mode}`];
  const producer = await rawProducer();
  await producer.send(target, [rawRecord(0, mode)]);
  const batches = [];
  if (prebuilt) {
    for (let i = 0; i < N; i += batchSize) batches.push(Array.from({ length: Math.min(batchSize, N - i) }, (_, j) => rawRecord(i + j, mode)));
  }
  const stop = clock();
  if (prebuilt) {
    for (const messages of batches) await producer.send(target, messages);
  } else {
    for (let i = 0; i < N; i += batchSize) await producer.send(target, Array.from({ length: Math.min(batchSize, N - i) }, (_, j) => rawRecord(i + j, mode)));
  }
  const t = stop();
  await producer.close();
  return figures(N, t);
}

async function benchRawAwaited() {
  const producer = await rawProducer();
  await producer.send(T.awaited, [rawRecord(0)]);
  const start = performance.now();
  for (let i = 0; i < AWAITED; i++) await producer.send(T.awaited, [rawRecord(i)]);
  const ms = performance.now() - start;
  await producer.close();
  return { rate: rate(AWAITED, ms) };
}

// ---- 4. consume ------------------------------------------------------------------------

async function benchOursConsume(round, mode, telemetry) {
  const group = `bench-consume-${run}-${mode}-${round}${telemetry ? '-tel' : ''}`;
  const bus = await createEventBus({ url: `kafka://${BROKERS.join(',')}`, group, ...(telemetry ? { telemetry } : {}) }, { adapter });
  const tally = consumeTally();
  await bus.subscribeEnvelope(T[`ours-${mode}`], async (envelope) => tally.add(envelope.payload), { ordering: 'key', startFrom: 'earliest' });
  await bus.start();
  await waitUntil(() => tally.handled >= CONSUME_N, 600_000, `busline consumer handled ${tally.handled} of ${CONSUME_N}`);
  await bus.close();
  return tally.result();
}

async function benchRawConsume(round, mode) {
  const consumer = kafka.consumer({ groupId: `bench-raw-consume-${run}-${mode}-${round}`, maxWaitTimeInMs: 250, allowAutoTopicCreation: false });
  const tally = consumeTally();
  await consumer.connect();
  await consumer.subscribe({ topic: T[`ours-${mode}`], fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: 4,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const message of batch.messages) {
        tally.add(rawPayload(message.value, mode), false);
        resolveOffset(message.offset);
      }
      tally.stamp();
      await heartbeat();
    },
  });
  await waitUntil(() => tally.handled >= CONSUME_N, 600_000, `raw consumer handled ${tally.handled} of ${CONSUME_N}`);
  await consumer.disconnect();
  return tally.result();
}

/**
 * The same records read by bench/minimal-reader.mjs (no Kafka client: Fetch requests by hand, key, value and
 * header strings per record) with the same per-key check: what a record costs Node itself.
 */
async function benchMinimalRead(mode) {
  const tally = consumeTally();
  await minimalRead({ brokers: BROKERS, topic: T[`ours-${mode}`], count: CONSUME_N, onRecord: (record) => tally.add(rawPayload(record.value, mode)) });
  return tally.result();
}

// ---- 5. latency at a fixed offered rate -----------------------------------------------

/** Key index of the warm-up message: the consumer reports it instead of counting it. */
const WARM = 0xffffffff;

/** A latency histogram in µs: `record(sentAt)` adds now − sentAt (ms since the epoch), `ms(p)` reads a percentile in ms. */
function latencyHistogram() {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  return {
    record: (sentAt) => h.recordValue(Math.max(1, Math.round((performance.timeOrigin + performance.now() - sentAt) * 1000))),
    ms: (p) => ((p === 100 ? h.maxValue : h.getValueAtPercentile(p)) / 1000).toFixed(1),
  };
}

/**
 * The latency consumer: subscribes to `topic` (from the latest offset) and
 * measures publish-to-handle of every message with seq >= warmup, until
 * `total` are handled. `report` gets { warm: true } when a warm-up message
 * arrives and the figures at the end. Runs in the bench's process or in a
 * child process of its own (BENCH_ROLE=latency-consumer, figures over IPC).
 */
async function latencyConsumer({ topic, group, total, warmup }, report) {
  const consumer = await createEventBus({ url: `kafka://${BROKERS.join(',')}`, group }, { adapter });
  const histogram = latencyHistogram();
  let handled = 0;
  let finished;
  const done = new Promise((resolve) => (finished = resolve));
  await consumer.subscribeEnvelope(
    topic,
    async (envelope) => {
      const { key, seq, sentAt } = readPayload(envelope.payload);
      if (key === WARM) return report({ warm: true });
      if (seq >= warmup) histogram.record(sentAt);
      if (++handled === total) finished();
    },
    { startFrom: 'latest' },
  );
  await consumer.start();
  await done;
  await consumer.close();
  report({ count: total - warmup, p50: histogram.ms(50), p99: histogram.ms(99), p999: histogram.ms(99.9), max: histogram.ms(100) });
}

/**
 * Publishes RATE msg/s for LATENCY_SECONDS (open loop: each message stamped
 * with its scheduled send time) and returns the consumer's figures. With
 * `ownProcess` the consumer runs in a child process, as a consuming service
 * would; otherwise it shares this process's event loop with the publisher.
 */
let latencyRuns = 0;
async function benchLatency(RATE, ownProcess) {
  const topic = T.latency;
  // A group of its own per run: a group used before would resume from its commits, behind this run's records.
  const group = `bench-lat-${run}-${ownProcess ? 'process' : 'inline'}-${RATE}-${++latencyRuns}`;
  const total = Math.round(RATE * LATENCY_SECONDS);
  const options = { topic, group, total, warmup: Math.round(total / 10) };
  let warm = false;
  let figuresOf;
  const figures = new Promise((resolve) => (figuresOf = resolve));
  const report = (m) => (m.warm ? (warm = true) : figuresOf(m));
  let child;
  if (ownProcess) {
    child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_ROLE: 'latency-consumer', BENCH_LATENCY_OPTIONS: JSON.stringify(options) } });
    child.on('message', report);
    child.on('exit', (code) => code && figuresOf({ error: `the latency consumer process exited with ${code}` }));
  } else {
    void latencyConsumer(options, report);
  }
  const publisher = await createEventBus({ url: `kafka://${BROKERS.join(',')}`, group: `bench-lat-pub-${run}`, ...KAFKA_SECTION }, { adapter });
  await publisher.start();
  // The consumer starts from the latest offset once it joined: warm up until it sees a message.
  const warmDeadline = performance.now() + 120_000;
  while (!warm) {
    if (performance.now() > warmDeadline) throw new Error('timed out: the latency consumer receiving a warm-up message');
    await publisher.publish(topic, payloadOf(WARM, 0), { aggregateId: 'warm' });
    await waitUntil(() => warm || performance.now() > warmDeadline, 200, 'a warm-up message').catch(() => undefined);
  }
  let sent = 0;
  let settled = 0;
  let failed = 0;
  let firstFailure;
  // Scheduled send to the broker's acknowledgement of the publish: with publish-to-handle, it says whether
  // a tail formed before the broker acknowledged (publisher, broker) or after (consumer).
  const acked = latencyHistogram();
  const warmup = options.warmup;
  const start = performance.now();
  await new Promise((resolveDone) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE));
      for (; sent < due; sent++) {
        // Open loop: stamped with the scheduled time, not the (possibly late) actual one.
        const scheduled = performance.timeOrigin + start + (sent / RATE) * 1000;
        const seq = sent;
        publisher.publish(topic, payloadOf(sent % KEYS, sent, scheduled), { aggregateId: `agg-${sent % KEYS}` }).then(
          () => {
            settled++;
            if (seq >= warmup) acked.record(scheduled);
          },
          (error) => {
            settled++;
            failed++;
            firstFailure ??= error.code ?? error.message;
          },
        );
      }
      if (sent >= total) {
        clearInterval(timer);
        resolveDone();
      }
    }, 1);
  });
  // A failed publish never reaches the consumer, which counts to `total`: then there is nothing to wait for.
  await waitUntil(() => settled === total, 120_000, `publishes settled (${settled} of ${total})`).catch(() => undefined);
  let timeout;
  const result = failed
    ? { error: `${fmt(failed)} of ${fmt(total)} publishes failed (${firstFailure}): more than this process sustains` }
    : await Promise.race([figures, new Promise((resolve) => (timeout = setTimeout(() => resolve({ error: 'the latency consumer did not finish in 120 s' }), 120_000)))]);
  clearTimeout(timeout);
  child?.kill();
  await publisher.close();
  return { ...result, ackP50: acked.ms(50), ackP99: acked.ms(99), rate: RATE, failed, where: ownProcess ? 'consumer in its own process' : "consumer in the publisher's process" };
}

/**
 * The latency runs at RATE (the issue's: half the best publish rate, or BENCH_RATE): consumer in its own
 * process, then in the publisher's, and Java's ProducerPerformance at the same offered rate as the reference;
 * then the ladder (BENCH_LATENCY_RATES), consumer in its own process, each with its Java reference.
 */
async function measureLatency(RATE) {
  const latencies = [];
  for (const ownProcess of [true, false]) {
    log(`latency at ${RATE} msg/s${RATE_KNOB === undefined ? ' (half the best busline publish rate)' : ''} for ${LATENCY_SECONDS} s, ${ownProcess ? 'consumer in its own process' : "consumer in the publisher's process"}…`);
    const latency = await benchLatency(RATE, ownProcess);
    log(latency.error ? `  not measured: ${latency.error}` : `  p50 ${latency.p50} ms, p99 ${latency.p99} ms`);
    latencies.push(latency);
  }
  const javaLatency = await javaLatencyAt(RATE);
  const ladder = [];
  for (const rung of LADDER_KNOB ?? [Math.round(RATE / 4), Math.round(RATE / 10)]) {
    log(`latency ladder: ${rung} msg/s for ${LATENCY_SECONDS} s, consumer in its own process…`);
    const latency = await benchLatency(rung, true);
    log(latency.error ? `  not measured: ${latency.error}` : `  p50 ${latency.p50} ms, p99 ${latency.p99} ms`);
    ladder.push({ latency, java: await javaLatencyAt(rung) });
  }
  return { RATE, latencies, javaLatency, ladder };
}

async function javaLatencyAt(offered) {
  log(`Kafka ProducerPerformance (Java) at ${fmt(offered)} msg/s offered, the latency reference…`);
  const java = await producerPerformance({ brokers: BROKERS, topic: T.javaLatency, count: offered * LATENCY_SECONDS, size: SIZE, throughput: offered });
  log(java.skipped ? `  skipped: ${java.skipped}` : `  ${java.line}`);
  return java;
}

function printLatency({ RATE, latencies, javaLatency, ladder }) {
  for (const latency of latencies) {
    if (latency.error) {
      console.log(`publish-to-handle latency (${latency.where}) at ${fmt(latency.rate)} msg/s offered: not measured: ${latency.error}`);
      continue;
    }
    console.log(
      `publish-to-handle latency (bus default content mode, ${latency.where}) at ${fmt(latency.rate)} msg/s offered` +
        `${RATE_KNOB === undefined ? ' (half the best busline publish rate)' : ''} (open loop, ${fmt(latency.count)} measured): ` +
        `p50 ${latency.p50} ms, p99 ${latency.p99} ms, p99.9 ${latency.p999} ms, max ${latency.max} ms` +
        `${latency.failed ? `, ${latency.failed} failed` : ''}; target p99 <= 25 ms ${Number(latency.p99) <= 25 ? 'PASS' : 'FAIL'}` +
        `; of it, scheduled send to publish acknowledged: p50 ${latency.ackP50} ms, p99 ${latency.ackP99} ms`,
    );
  }
  if (!javaLatency.skipped) {
    console.log(
      `  reference: Java ProducerPerformance at ${fmt(RATE)} msg/s offered, send to acknowledgement only (no consumer): ` +
        `p50 ${javaLatency.p50} ms, p99 ${javaLatency.p99} ms (${javaLatency.rate.toLocaleString('en-US')} msg/s achieved)`,
    );
  }
  if (ladder.length) {
    console.log('latency ladder (consumer in its own process; Java ProducerPerformance at the same offered rate, send to acknowledgement):');
    for (const { latency, java } of ladder) {
      const ours = latency.error
        ? `not measured: ${latency.error}`
        : `busline p50 ${latency.p50} ms, p99 ${latency.p99} ms (${Number(latency.p99) <= 25 ? 'within' : 'over'} 25 ms; acknowledged p99 ${latency.ackP99} ms)`;
      const ref = java.skipped ? `Java skipped: ${java.skipped}` : `Java p50 ${java.p50} ms, p99 ${java.p99} ms`;
      console.log(`  ${padl(fmt(latency.rate), 8)} msg/s offered: ${ours}; ${ref}`);
    }
  }
}

// ---- report ---------------------------------------------------------------------------

const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : String(n));
const pad = (s, n) => String(s).padEnd(n);
const padl = (s, n) => String(s).padStart(n);

async function main() {
  log(`Node ${process.version}, brokers ${BROKERS.join(',')}, ${N} messages of ${SIZE} bytes, ${PARTITIONS} partitions, ${KEYS} keys, acks=all, idempotent`);
  await createTopics();
  try {
    if (ONLY === 'latency') {
      console.log(`\nKafka adapter latency — ${SIZE} B, acks=all, idempotent, producer client ${PRODUCER_CLIENT}, consumer kafkajs, ${PARTITIONS} partitions, ${LATENCY_SECONDS} s per rate, Node ${process.version}, brokers ${BROKERS.join(',')}`);
      printLatency(await measureLatency(RATE_KNOB));
      return;
    }
    const best = (results) => results.reduce((a, b) => (b.rate > a.rate ? b : a));
    // Per content mode: busline publish (off and on telemetry), raw sendBatch of the same records, consume, raw consume.
    const R = Object.fromEntries(MODES.map((mode) => [mode, { ours: [], oursOn: [], consumeOn: [], rawBatch: [], rawPrebuilt: [], consume: [], rawConsume: [], minimal: [], javaSame: [] }]));
    // The Java tools run in every round, beside busline's runs of that round: this VM's speed drifts (up to 2x within
    // the hour), and a ceiling measured minutes apart from busline would skew its ratio either way.
    const javaRuns = { publish: [], consume: [] };
    /** One run of a Java tool, logged and kept in `runs`. */
    const javaRun = async (what, tool, options, runs) => {
      log(what);
      const run = await tool({ brokers: BROKERS, ...options });
      runs.push(run);
      log(run.skipped ? `  skipped: ${run.skipped}` : `  ${run.line}`);
    };
    const javaPublish = (round) =>
      javaRun(`round ${round}/${ROUNDS}: Kafka ProducerPerformance (Java), ${fmt(JAVA_N)} records…`, producerPerformance, { topic: T.java, count: JAVA_N, size: SIZE }, javaRuns.publish);
    const javaConsume = async (round) => {
      if (javaRuns.publish.every((run) => run.skipped)) return void javaRuns.consume.push({ skipped: 'no records: ProducerPerformance did not run' });
      await javaRun(`round ${round}/${ROUNDS}: Kafka ConsumerPerformance (Java), ${fmt(JAVA_N)} records…`, consumerPerformance, { topic: T.java, count: JAVA_N }, javaRuns.consume);
    };
    let awaited;
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate which side goes first, so JIT warm-up and heap state favour neither.
      const oursFirst = round % 2 === 1;
      if (!oursFirst) await javaPublish(round);
      for (const mode of MODES) {
        const r = R[mode];
        const publishOurs = async () => {
          log(`round ${round}/${ROUNDS}: busline publish, ${mode} mode…`);
          const ours = await benchOursPublish(T[`oursMore-${mode}`], mode);
          r.ours.push(ours);
          log(`  ${fmt(ours.rate)} msg/s, ${cpuText(ours)}, ${ours.batches} batches, avg ${ours.avgBatch} messages`);
          if (TELEMETRY !== undefined) await publishOursOn(T[`oursMore-${mode}`]);
        };
        const publishOursOn = async (target) => {
          log(`round ${round}/${ROUNDS}: busline publish, ${mode} mode, telemetry on…`);
          const on = await benchOursPublish(target, mode, TELEMETRY);
          r.oursOn.push(on);
          log(`  ${fmt(on.rate)} msg/s, ${cpuText(on)}`);
        };
        const publishRaw = async () => {
          const size = r.ours[0]?.avgBatch ?? Math.min(WINDOW / 2, 1_600);
          log(`round ${round}/${ROUNDS}: raw ${PRODUCER_CLIENT} send (batch ${size}, ${mode}-mode records built in the loop)…`);
          const rawBatch = await benchRawSendBatch(size, false, mode);
          r.rawBatch.push(rawBatch);
          log(`  ${fmt(rawBatch.rate)} msg/s, ${cpuText(rawBatch)}`);
          log(`round ${round}/${ROUNDS}: raw ${PRODUCER_CLIENT} send (batch ${size}, ${mode}-mode records pre-built)…`);
          const rawPrebuilt = await benchRawSendBatch(size, true, mode);
          r.rawPrebuilt.push(rawPrebuilt);
          log(`  ${fmt(rawPrebuilt.rate)} msg/s, ${cpuText(rawPrebuilt)}`);
        };
        // Round 1 runs busline first either way: the raw rows send batches of the size busline's batcher used.
        if (oursFirst || round === 1) {
          await publishOurs();
          await publishRaw();
        } else {
          await publishRaw();
          await publishOurs();
        }
      }
      if (oursFirst) await javaPublish(round);
      if (round === 1) {
        log(`raw ${PRODUCER_CLIENT} send awaited per message (${AWAITED}, binary-mode records)…`);
        awaited = await benchRawAwaited();
        log(`  ${fmt(awaited.rate)} msg/s`);
        for (const mode of MODES) {
          // With BENCH_TELEMETRY's telemetry (if any), so the records carry trace context as a traced producer's would.
          log(`busline publish of the ${fmt(CONSUME_N)} ${mode}-mode records the consume runs read (untimed)…`);
          await benchOursPublish(T[`ours-${mode}`], mode, TELEMETRY, CONSUME_N);
        }
      }
      if (!oursFirst) await javaConsume(round);
      for (const mode of MODES) {
        const r = R[mode];
        const consumeOurs = async () => {
          log(`round ${round}/${ROUNDS}: busline consume (per-key order), ${mode} mode…`);
          const consume = await benchOursConsume(round, mode);
          r.consume.push(consume);
          log(`  ${fmt(consume.rate)} msg/s, ${consumeCpuText(consume)}, ${consume.violations} order violations`);
          if (TELEMETRY === undefined) return;
          log(`round ${round}/${ROUNDS}: busline consume, ${mode} mode, telemetry on…`);
          const on = await benchOursConsume(round, mode, TELEMETRY);
          r.consumeOn.push(on);
          log(`  ${fmt(on.rate)} msg/s, ${on.cpu.toFixed(1)} µs CPU/msg, ${on.violations} order violations`);
        };
        const consumeRaw = async () => {
          log(`round ${round}/${ROUNDS}: raw kafkajs eachBatch consume of the ${mode}-mode records…`);
          const rawConsume = await benchRawConsume(round, mode);
          r.rawConsume.push(rawConsume);
          log(`  ${fmt(rawConsume.rate)} msg/s, ${consumeCpuText(rawConsume)}, ${rawConsume.violations} order violations`);
        };
        const consumeMinimal = async () => {
          log(`round ${round}/${ROUNDS}: minimal Node reader (no client) of the ${mode}-mode records…`);
          const minimal = await benchMinimalRead(mode);
          r.minimal.push(minimal);
          log(`  ${fmt(minimal.rate)} msg/s, ${consumeCpuText(minimal)}, ${minimal.violations} order violations`);
        };
        for (const run of oursFirst ? [consumeOurs, consumeRaw, consumeMinimal] : [consumeMinimal, consumeRaw, consumeOurs]) await run();
        // Kafka's own consumer on busline's records (key, headers or the JSON event): what the record shape costs it.
        await javaRun(`round ${round}/${ROUNDS}: Kafka ConsumerPerformance (Java) of the ${mode}-mode records…`, consumerPerformance, { topic: T[`ours-${mode}`], count: CONSUME_N }, r.javaSame);
      }
      if (oursFirst) await javaConsume(round);
    }
    const violationsOf = (runs) => runs.reduce((s, r) => s + r.violations, 0);
    const B = Object.fromEntries(
      MODES.map((mode) => {
        const r = R[mode];
        return [
          mode,
          {
            ours: best(r.ours),
            rawBatch: best(r.rawBatch),
            rawPrebuilt: best(r.rawPrebuilt),
            consume: { ...best(r.consume), violations: violationsOf(r.consume) },
            rawConsume: { ...best(r.rawConsume), violations: violationsOf(r.rawConsume) },
            minimal: { ...best(r.minimal), violations: violationsOf(r.minimal) },
          },
        ];
      }),
    );
    // The bus default content mode is binary; with only structured measured, its rate stands in.
    const RATE = RATE_KNOB ?? Math.round((B.binary ?? B.structured).ours.rate / 2);
    const latency = await measureLatency(RATE);
    const bestJava = (runs) => best([{ rate: 0, skipped: runs[0]?.skipped ?? 'not run' }, ...runs.filter((run) => !run.skipped)]);
    const java = bestJava(javaRuns.publish);
    const javaConsumeBest = bestJava(javaRuns.consume);

    const rows = [];
    for (const mode of MODES) {
      const { ours, rawBatch, rawPrebuilt } = B[mode];
      const batch = R[mode].ours[0].avgBatch;
      rows.push(
        [`busline publish, ${mode} (bus.publish, ${fmt(WINDOW)} outstanding)`, ours.rate, '', ''],
        [`  raw ${PRODUCER_CLIENT} send ${batch}, same ${mode} records in loop`, rawBatch.rate, (ours.rate / rawBatch.rate).toFixed(2) + 'x', '>= 0.90x', ours.rate >= 0.9 * rawBatch.rate],
        [`  raw ${PRODUCER_CLIENT} send ${batch}, ${mode} records pre-built`, rawPrebuilt.rate, (ours.rate / rawPrebuilt.rate).toFixed(2) + 'x', '(info)'],
        [`  raw ${PRODUCER_CLIENT} send awaited per message (${fmt(AWAITED)} msgs)`, awaited.rate, (ours.rate / awaited.rate).toFixed(1) + 'x', '>= 10x', ours.rate >= 10 * awaited.rate],
        ['  Java ProducerPerformance (ceiling, no headers)', java.rate || 'skipped', java.rate ? (ours.rate / java.rate).toFixed(2) + 'x' : '', java.rate ? '>= 0.50x' : '', java.rate && ours.rate >= 0.5 * java.rate],
      );
    }
    for (const mode of MODES) {
      const { consume, rawConsume, minimal } = B[mode];
      const sameBest = bestJava(R[mode].javaSame);
      rows.push(
        [`busline consume, ${mode}, per-key order (1,000 keys)`, consume.rate, '', ''],
        [`  raw kafkajs eachBatch consume of the ${mode} records`, rawConsume.rate, (consume.rate / rawConsume.rate).toFixed(2) + 'x', '>= 1.00x', consume.rate >= rawConsume.rate],
        [`  minimal Node reader, no client, same ${mode} records`, minimal.rate, (consume.rate / minimal.rate).toFixed(2) + 'x', '(info)'],
        ['  Java ConsumerPerformance (ceiling, no headers)', javaConsumeBest.rate || 'skipped', javaConsumeBest.rate ? (consume.rate / javaConsumeBest.rate).toFixed(2) + 'x' : '', javaConsumeBest.rate ? '>= 0.50x' : '', javaConsumeBest.rate && consume.rate >= 0.5 * javaConsumeBest.rate],
        [`  Java ConsumerPerformance of the same ${mode} records`, sameBest.rate || 'skipped', sameBest.rate ? (consume.rate / sameBest.rate).toFixed(2) + 'x' : '', '(info)'],
      );
    }
    const line = '-'.repeat(106);
    console.log(
      `\nKafka adapter benchmark — ${fmt(N)} messages published and ${fmt(CONSUME_N)} consumed per run, ${SIZE} B each, acks=all, idempotent, producer client ${PRODUCER_CLIENT}, consumer kafkajs, ${PARTITIONS} partitions, ` +
        `best of ${ROUNDS} rounds, content mode ${MODES.join(' and ')}, Node ${process.version}, brokers ${BROKERS.join(',')}`,
    );
    for (const mode of MODES) {
      const r = R[mode];
      const all = (runs) => runs.map((x) => fmt(x.rate)).join(' / ');
      console.log(`all rounds, ${mode} (msg/s): publish ${all(r.ours)}; raw sendBatch ${all(r.rawBatch)}; raw pre-built ${all(r.rawPrebuilt)}; consume ${all(r.consume)}; raw eachBatch ${all(r.rawConsume)}; minimal reader ${all(r.minimal)}`);
    }
    const javaAll = (runs) => runs.map((x) => (x.skipped ? 'skipped' : fmt(x.rate))).join(' / ');
    console.log(`all rounds, Java (msg/s): ProducerPerformance ${javaAll(javaRuns.publish)}; ConsumerPerformance ${javaAll(javaRuns.consume)}`);
    // Each round's busline rate over the Java tool's rate of the same round: how much of a ratio the drift explains.
    const paired = (ours, javas) => ours.map((x, i) => (javas[i]?.rate ? (x.rate / javas[i].rate).toFixed(2) + 'x' : '-')).join(' / ');
    for (const mode of MODES) {
      const r = R[mode];
      console.log(
        `ratio within each round, ${mode}: publish ÷ ProducerPerformance ${paired(r.ours, javaRuns.publish)}; consume ÷ ConsumerPerformance ${paired(r.consume, javaRuns.consume)}; ` +
          `÷ ConsumerPerformance of the same records ${paired(r.consume, r.javaSame)} (Java: ${javaAll(r.javaSame)} msg/s)`,
      );
    }
    console.log(line);
    console.log(`${pad('measurement', 62)}${padl('msg/s', 11)}${padl('busline ÷ it', 15)}${padl('target', 11)}  result`);
    console.log(line);
    for (const [name, value, ratio, target, pass] of rows) {
      const verdict = target && target !== '(info)' ? (pass ? 'PASS' : 'FAIL') : '';
      console.log(`${pad(name, 62)}${padl(fmt(value), 11)}${padl(ratio, 15)}${padl(target, 11)}  ${verdict}`);
    }
    console.log(line);
    for (const mode of MODES) {
      const { consume, rawConsume, minimal } = B[mode];
      console.log(
        `per-key order, ${mode}: busline ${consume.violations} violations, raw ${rawConsume.violations} violations, minimal reader ${minimal.violations} violations (${consume.violations === 0 ? 'PASS' : 'FAIL'})`,
      );
    }
    printLatency(latency);
    const median = (runs, field) => runs.map((r) => r[field]).sort((a, b) => a - b)[Math.floor((runs.length - 1) / 2)];
    for (const mode of MODES) {
      const r = R[mode];
      console.log(
        `CPU per message, ${mode}, median of rounds (client; broker): busline publish ${median(r.ours, 'cpu').toFixed(1)}; ${median(r.ours, 'broker').toFixed(1)} µs, ` +
          `raw sendBatch ${median(r.rawBatch, 'cpu').toFixed(1)}; ${median(r.rawBatch, 'broker').toFixed(1)} µs, ` +
          `raw pre-built ${median(r.rawPrebuilt, 'cpu').toFixed(1)}; ${median(r.rawPrebuilt, 'broker').toFixed(1)} µs`,
      );
      // The main thread bounds a consumer's rate; the rest of its CPU is V8's helper threads (garbage collection).
      const split = (runs) => `${median(runs, 'cpu').toFixed(1)} (main thread ${median(runs, 'main').toFixed(1)})`;
      console.log(`consume CPU µs per message, ${mode}, median of rounds: busline ${split(r.consume)}, raw kafkajs ${split(r.rawConsume)}, minimal reader ${split(r.minimal)}`);
    }
    if (B.binary && B.structured) {
      const x = (a, b) => (a / b).toFixed(2) + 'x';
      console.log(
        `structured ÷ binary: busline publish ${x(B.structured.ours.rate, B.binary.ours.rate)}, busline consume ${x(B.structured.consume.rate, B.binary.consume.rate)}, ` +
          `raw sendBatch ${x(B.structured.rawBatch.rate, B.binary.rawBatch.rate)}, raw pre-built ${x(B.structured.rawPrebuilt.rate, B.binary.rawPrebuilt.rate)}, ` +
          `raw eachBatch ${x(B.structured.rawConsume.rate, B.binary.rawConsume.rate)}; publish CPU/msg ${median(R.structured.ours, 'cpu').toFixed(1)} vs ${median(R.binary.ours, 'cpu').toFixed(1)} µs`,
      );
    }
    if (TELEMETRY !== undefined) {
      // Rates: best of rounds, as above; CPU: median of rounds.
      const pair = (runs) => ({ rate: best(runs).rate, cpu: median(runs, 'cpu') });
      const floor = await telemetryFloor();
      for (const mode of MODES) {
        console.log(overheadLine(`bus.publish, ${mode}`, pair(R[mode].ours), pair(R[mode].oursOn), floor.publish));
        console.log(overheadLine(`consume, per-key order, ${mode}`, pair(R[mode].consume), pair(R[mode].consumeOn), floor.consume));
      }
    }
    if (java.line) console.log(`Java: ${java.line}`);
    else console.log(`Java: skipped — ${java.skipped}`);
  } finally {
    await admin.deleteTopics({ topics: Object.values(T) }).catch((e) => log(`could not delete bench topics: ${e.message}`));
    await admin.disconnect();
  }
}

const role = process.env.BENCH_ROLE === 'latency-consumer' ? () => latencyConsumer(JSON.parse(process.env.BENCH_LATENCY_OPTIONS), (m) => process.send(m)) : main;
role().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
