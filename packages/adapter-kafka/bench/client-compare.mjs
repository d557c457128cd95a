#!/usr/bin/env node
/**
 * pnpm bench:kafka-clients — the measurement that chooses busline's Kafka client.
 * One broker (BUSLINE_KAFKA_BROKERS, default 127.0.0.1:9092), one run: the same
 * busline-shaped records produced and consumed through each candidate client,
 * with Kafka's own Java ProducerPerformance / ConsumerPerformance as the ceiling.
 *
 * Records: a 256-byte JSON payload keyed by aggregate id (`agg-0`…`agg-999`), in
 * three encodings:
 *   none        — the payload as the value, no headers
 *   binary      — CloudEvents binary mode as busline writes it today: the 8 headers
 *                 ce_specversion, ce_id (UUIDv7), ce_type, ce_source, ce_time,
 *                 ce_eventversion, content-type, ce_subject (core's encoder)
 *   structured  — CloudEvents structured mode: the whole event JSON as the value,
 *                 one `content-type: application/cloudevents+json` header
 *
 * Per client and Node runtime, in a child process of its own (so CPU is the
 * client's alone, and @platformatic/kafka can run on Node 22 while the repository
 * runs on 20; kafkajs and kafka-ts run on both, so runtime differences show):
 *   produce — records built in the timed loop, BENCH_BATCH (1,000) per send like
 *             busline's publish batcher, BENCH_IN_FLIGHT (1, busline's default
 *             maxInFlightBatches) sends outstanding, acks=all (-1), idempotent,
 *             the Java client's murmur2 partitioner; each send's ack time gives p50/p99
 *   consume — a new consumer group reads a topic from the start (the same topic for
 *             every client, written once by kafkajs), in order per partition; each
 *             record is decoded as busline decodes it (core's decodeMessage) and its
 *             per-key sequence checked; processed offsets committed every second and
 *             on stop. Timed from the first record to the last.
 * and after each child, with an admin client: whether each partition received the
 * records the Java partitioner assigns it, and whether the group's committed
 * offsets reached the end of every partition.
 *
 * A client's module in bench/clients/ exports `openProducer({ brokers })` →
 * `{ send(topic, records), close() }` (records: `{ key, value: Buffer, headers? }`)
 * and `startConsumer({ brokers, groupId, topic, partitions, commitIntervalMs, onRecord })`
 * → `{ stop() }`, where `onRecord(partition, offset, value, headers)` is called in
 * order per partition and `stop` commits what was processed.
 *
 * Knobs: BENCH_MESSAGES (100000), BENCH_BATCH (1000), BENCH_IN_FLIGHT (1),
 * BENCH_PARTITIONS (6), BENCH_CLIENTS (all: kafkajs@node,kafkajs@22,platformatic@22,
 * kafka-ts@node,kafka-ts@22 — a comma list of client@runtime or client names),
 * BUSLINE_KAFKA_LIBS (Kafka's jars; default <repo>/.cache/kafka-*\/libs).
 * Bench topics are deleted at the end.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { decodeMessage, encodeNewEnvelope, KAFKA_BINDING, newEventId } from '@busline/core';
import { consumerPerformance, producerPerformance } from './java-tools.mjs';
import { pinnedNode } from './node-runtime.mjs';

const env = (name, fallback) => (process.env[name] === undefined || process.env[name] === '' ? fallback : Number(process.env[name]));
const BROKERS = (process.env.BUSLINE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const N = env('BENCH_MESSAGES', 100_000);
const BATCH = env('BENCH_BATCH', 1_000);
const IN_FLIGHT = env('BENCH_IN_FLIGHT', 1);
const PARTITIONS = env('BENCH_PARTITIONS', 6);
const COMMIT_INTERVAL_MS = 1_000;
const KEYS = 1_000;
const SIZE = 256;
const TYPE = 'bench.order-placed';
const SOURCE = 'client-compare';
const ENCODINGS = ['none', 'binary', 'structured'];
const SELF = fileURLToPath(import.meta.url);
const log = (...args) => console.error('[client-compare]', ...args);
const rate = (count, ms) => Math.round((count / ms) * 1000);

// ---- the records -----------------------------------------------------------------------

const PAD = 'x'.repeat(SIZE);
/** Record i: key i % 1,000, sequence i / 1,000 within its key; its JSON is SIZE bytes. */
function payloadOf(i) {
  const k = i % KEYS;
  const s = Math.floor(i / KEYS);
  const bare = JSON.stringify({ k, s, p: '' }).length;
  return { k, s, p: PAD.slice(0, SIZE - bare) };
}

const bufferOf = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function recordOf(encoding, i) {
  const payload = payloadOf(i);
  const key = `agg-${payload.k}`;
  if (encoding === 'none') return { key, value: Buffer.from(JSON.stringify(payload)) };
  if (encoding === 'binary') {
    // busline's publish path: envelope fields straight to ce_ headers.
    const wire = encodeNewEnvelope(payload, { aggregateId: key }, { type: TYPE, source: SOURCE }, KAFKA_BINDING);
    return { key, value: bufferOf(wire.body), headers: wire.headers };
  }
  const event = { specversion: '1.0', id: newEventId(), type: TYPE, source: SOURCE, subject: key, time: new Date().toISOString(), datacontenttype: 'application/json', data: payload };
  return { key, value: Buffer.from(JSON.stringify(event)), headers: { 'content-type': 'application/cloudevents+json' } };
}

const batchOf = (encoding, from, count) => Array.from({ length: count }, (_, j) => recordOf(encoding, from + j));

/** Decodes each record as busline would and checks each key's sequence: gaps are violations, repeats redeliveries. */
function recordChecker(encoding) {
  const last = new Int32Array(KEYS).fill(-1);
  let violations = 0;
  let undecodable = 0;
  return {
    check(value, headers) {
      let payload;
      if (encoding === 'none') payload = JSON.parse(value.toString('utf8'));
      else {
        const envelope = decodeMessage({ headers, body: value }, KAFKA_BINDING);
        if (envelope instanceof Error) {
          undecodable++;
          return;
        }
        payload = envelope.payload;
      }
      const { k, s } = payload;
      if (s > last[k] + 1) violations++;
      if (s > last[k]) last[k] = s;
    },
    get violations() {
      return violations;
    },
    get undecodable() {
      return undecodable;
    },
  };
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
};

// ---- the child: one client on one runtime -------------------------------------------------

async function produce(client, topic, encoding) {
  const producer = await client.openProducer({ brokers: BROKERS });
  // Connection, metadata and producer id before the clock starts.
  await producer.send(topic, batchOf(encoding, 0, BATCH));
  const sendMs = [];
  let next = BATCH;
  const end = BATCH + N;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const lane = async () => {
    while (next < end) {
      const from = next;
      const count = Math.min(BATCH, end - from);
      next += count;
      const records = batchOf(encoding, from, count);
      const sent = performance.now();
      await producer.send(topic, records);
      sendMs.push(performance.now() - sent);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await producer.close();
  return { rate: rate(N, ms), cpu: (cpu.user + cpu.system) / N, p50: percentile(sendMs, 0.5), p99: percentile(sendMs, 0.99) };
}

async function consume(client, topic, encoding, groupId) {
  const checker = recordChecker(encoding);
  let handled = 0;
  let first = 0;
  let last = 0;
  let cpu0;
  let cpu = NaN;
  let finished;
  const done = new Promise((resolve) => (finished = resolve));
  const consumer = await client.startConsumer({
    brokers: BROKERS,
    groupId,
    topic,
    partitions: PARTITIONS,
    commitIntervalMs: COMMIT_INTERVAL_MS,
    onRecord(partition, offset, value, headers) {
      if (handled === 0) {
        first = performance.now();
        cpu0 = process.cpuUsage();
      }
      checker.check(value, headers);
      handled++;
      if (handled === N) {
        last = performance.now();
        const c = process.cpuUsage(cpu0);
        cpu = (c.user + c.system) / (N - 1);
        finished();
      }
    },
  });
  const deadline = 60_000 + N;
  let timer;
  await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, deadline)))]);
  clearTimeout(timer);
  await consumer.stop();
  if (handled < N) return { error: `handled ${handled} of ${N} records in ${deadline / 1000} s` };
  return { rate: rate(N - 1, last - first), cpu, violations: checker.violations, undecodable: checker.undecodable };
}

async function child(job) {
  const client = await import(`./clients/${job.client}.mjs`);
  const result = { produce: {}, consume: {} };
  for (const encoding of ENCODINGS) {
    log(`${job.label}: produce ${encoding}…`);
    result.produce[encoding] = await produce(client, job.produceTopics[encoding], encoding).catch((error) => ({ error: error.message }));
  }
  for (const encoding of ENCODINGS) {
    log(`${job.label}: consume ${encoding}…`);
    result.consume[encoding] = await consume(client, job.consumeTopics[encoding], encoding, job.groups[encoding]).catch((error) => ({ error: error.message }));
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---- the parent ----------------------------------------------------------------------------

const CANDIDATES = [
  { client: 'kafkajs', runtime: 'node' },
  { client: 'kafkajs', runtime: '22' },
  { client: 'platformatic', runtime: '22' },
  { client: 'kafka-ts', runtime: 'node' },
  { client: 'kafka-ts', runtime: '22' },
];

function selected() {
  const wanted = process.env.BENCH_CLIENTS?.split(',').map((s) => s.trim()).filter(Boolean);
  if (!wanted?.length) return CANDIDATES;
  return CANDIDATES.filter((c) => wanted.includes(c.client) || wanted.includes(`${c.client}@${c.runtime}`));
}

/** The Node 22 binary scripts/node-runtime installs, or why there is none. */
function node22() {
  try {
    const path = pinnedNode(22);
    return { path, version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim() };
  } catch (error) {
    return { skipped: `scripts/node-runtime failed: ${error.message.split('\n')[0]}` };
  }
}

function packageVersion(client) {
  const name = { kafkajs: 'kafkajs', platformatic: '@platformatic/kafka', 'kafka-ts': 'kafka-ts' }[client];
  return JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
}

function runChild(node, job) {
  return new Promise((resolve) => {
    const proc = spawn(node, [SELF], { env: { ...process.env, CLIENT_COMPARE_JOB: JSON.stringify(job) }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.on('error', (error) => resolve({ error: error.message }));
    proc.on('close', (code) => {
      const line = out.trim().split('\n').pop();
      try {
        resolve(code === 0 ? JSON.parse(line) : { error: `exited ${code}` });
      } catch {
        resolve({ error: `no result (exit ${code})` });
      }
    });
  });
}

async function main() {
  const run = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const kafka = new kafkajs.Kafka({ brokers: BROKERS, clientId: 'client-compare', logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  const n22 = node22();
  const runtimes = { node: { path: process.execPath, version: process.version }, 22: n22 };
  const rows = selected().map((c) => ({ ...c, id: `${c.client}-${c.runtime}`, node: runtimes[c.runtime] }));
  const consumeTopics = Object.fromEntries(ENCODINGS.map((e) => [e, `client-compare-${run}-consume-${e}`]));
  const javaTopic = `client-compare-${run}-java`;
  for (const row of rows) {
    row.produceTopics = Object.fromEntries(ENCODINGS.map((e) => [e, `client-compare-${run}-${row.id}-${e}`]));
    row.groups = Object.fromEntries(ENCODINGS.map((e) => [e, `client-compare-${run}-${row.id}-${e}`]));
  }
  const topics = [...Object.values(consumeTopics), javaTopic, ...rows.flatMap((r) => Object.values(r.produceTopics))];
  log(`brokers ${BROKERS.join(',')}, ${N} records of ${SIZE} bytes, batches of ${BATCH}, ${IN_FLIGHT} in flight, ${PARTITIONS} partitions, ${KEYS} keys`);
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })), waitForLeaders: true });

    // The topics every consumer reads: written once, by kafkajs on this runtime.
    const reference = await import('./clients/kafkajs.mjs');
    const writer = await reference.openProducer({ brokers: BROKERS });
    for (const encoding of ENCODINGS) {
      log(`writing the ${encoding} consume topic…`);
      for (let i = 0; i < N; i += BATCH) await writer.send(consumeTopics[encoding], batchOf(encoding, i, Math.min(BATCH, N - i)));
    }
    await writer.close();
    const consumeEnds = Object.fromEntries(await Promise.all(ENCODINGS.map(async (e) => [e, await highWatermarks(admin, consumeTopics[e])])));
    const expected = expectedPartitionCounts(BATCH + N);

    for (const row of rows) {
      if (row.node.skipped) {
        row.result = { error: row.node.skipped };
        continue;
      }
      row.label = `${row.client} ${packageVersion(row.client)} on Node ${row.node.version}`;
      log(`${row.label}…`);
      row.result = await runChild(row.node.path, { client: row.client, label: row.label, produceTopics: row.produceTopics, consumeTopics, groups: row.groups });
      if (row.result.error) continue;
      for (const encoding of ENCODINGS) {
        const p = row.result.produce[encoding];
        if (!p.error) p.javaPartitions = sameCounts(await highWatermarks(admin, row.produceTopics[encoding]), expected);
        const c = row.result.consume[encoding];
        if (!c.error) c.committedToEnd = sameCounts(await committed(admin, row.groups[encoding], consumeTopics[encoding]), consumeEnds[encoding]);
      }
    }

    log('Kafka ProducerPerformance (Java)…');
    const javaProduce = await producerPerformance({ brokers: BROKERS, topic: javaTopic, count: N, size: SIZE });
    log('Kafka ConsumerPerformance (Java)…');
    const javaConsume = javaProduce.skipped ? { skipped: 'no records: ProducerPerformance did not run' } : await consumerPerformance({ brokers: BROKERS, topic: javaTopic, count: N });
    report(rows, javaProduce, javaConsume);
  } finally {
    await admin.deleteTopics({ topics }).catch((error) => log(`could not delete bench topics: ${error.message}`));
    await admin.disconnect();
  }
}

/** Records per partition when keys agg-(i % 1,000), i < count, go where the Java client puts them (kafkajs's DefaultPartitioner does: test/partitioner.test.ts). */
function expectedPartitionCounts(count) {
  const partitioner = kafkajs.Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: PARTITIONS }, (_, partitionId) => ({ partitionId, leader: 0 }));
  const counts = new Array(PARTITIONS).fill(0);
  for (let k = 0; k < KEYS; k++) {
    const perKey = Math.floor(count / KEYS) + (k < count % KEYS ? 1 : 0);
    counts[partitioner({ topic: 't', partitionMetadata, message: { key: `agg-${k}`, value: null } })] += perKey;
  }
  return counts;
}

async function highWatermarks(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic);
  const counts = new Array(PARTITIONS).fill(0);
  for (const { partition, high } of offsets) counts[partition] = Number(high);
  return counts;
}

async function committed(admin, groupId, topic) {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const counts = new Array(PARTITIONS).fill(-1);
  for (const { partition, offset } of entry?.partitions ?? []) counts[partition] = Number(offset);
  return counts;
}

const sameCounts = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---- the table -----------------------------------------------------------------------------

const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : String(n));
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '');
const yesNo = (b) => (b === undefined ? '' : b ? 'yes' : 'NO');

function table(title, header, widths, lines) {
  const width = widths.reduce((s, w) => s + w, 0);
  const cells = (values) => values.map((v, i) => (i === 0 ? String(v).padEnd(widths[i]) : String(v).padStart(widths[i]))).join('');
  console.log(`\n${title}`);
  console.log('-'.repeat(width));
  console.log(cells(header));
  console.log('-'.repeat(width));
  for (const line of lines) console.log(typeof line === 'string' ? line : cells(line));
  console.log('-'.repeat(width));
}

function report(rows, javaProduce, javaConsume) {
  const label = (row) => (row.label ?? `${row.client} on ${row.runtime === 'node' ? `Node ${process.version}` : 'Node 22'}`).padEnd(1);
  console.log(
    `\nKafka client comparison — ${fmt(N)} records x ${SIZE} B JSON, ${fmt(KEYS)} keys, ${PARTITIONS} partitions, acks=all, idempotent, ` +
      `batches of ${fmt(BATCH)}, ${IN_FLIGHT} in flight, brokers ${BROKERS.join(',')}. Ratios: ÷ the first row of the same encoding, and ÷ Java.`,
  );
  const produceLines = [];
  const consumeLines = [];
  for (const encoding of ENCODINGS) {
    const base = rows.find((r) => !r.result.error && !r.result.produce[encoding].error);
    const baseConsume = rows.find((r) => !r.result.error && !r.result.consume[encoding].error);
    for (const row of rows) {
      const name = `${label(row)} [${encoding}]`;
      if (row.result.error) {
        produceLines.push(`${name}: ${row.result.error}`);
        consumeLines.push(`${name}: ${row.result.error}`);
        continue;
      }
      const p = row.result.produce[encoding];
      if (p.error) produceLines.push(`${name}: ${p.error}`);
      else {
        produceLines.push([name, fmt(p.rate), ratio(p.rate, base?.result.produce[encoding].rate), ratio(p.rate, javaProduce.rate), `${p.p50.toFixed(1)} / ${p.p99.toFixed(1)}`, p.cpu.toFixed(1), yesNo(p.javaPartitions)]);
      }
      const c = row.result.consume[encoding];
      if (c.error) consumeLines.push(`${name}: ${c.error}`);
      else {
        consumeLines.push([name, fmt(c.rate), ratio(c.rate, baseConsume?.result.consume[encoding].rate), ratio(c.rate, javaConsume.rate), c.cpu.toFixed(1), `${c.violations} / ${c.undecodable}`, yesNo(c.committedToEnd)]);
      }
    }
  }
  produceLines.push(['Java ProducerPerformance (no key, no headers)', javaProduce.rate ? fmt(javaProduce.rate) : `skipped: ${javaProduce.skipped}`, '', '', '', '', '']);
  consumeLines.push(['Java ConsumerPerformance (no order kept)', javaConsume.rate ? fmt(javaConsume.rate) : `skipped: ${javaConsume.skipped}`, '', '', '', '', '']);
  table('produce', ['client [encoding]', 'msg/s', '÷ first', '÷ Java', 'send p50 / p99 ms', 'CPU µs/msg', 'Java partitions'], [58, 10, 9, 9, 19, 12, 17], produceLines);
  table('consume', ['client [encoding]', 'msg/s', '÷ first', '÷ Java', 'CPU µs/msg', 'order / undecodable', 'committed to end'], [58, 10, 9, 9, 12, 21, 18], consumeLines);
}

if (process.env.CLIENT_COMPARE_JOB) {
  child(JSON.parse(process.env.CLIENT_COMPARE_JOB)).then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
} else {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
