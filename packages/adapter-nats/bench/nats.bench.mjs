// NATS JetStream adapter benchmark: busline vs raw nats.js, in one run on the same server.
//
//   pnpm bench:nats          (= tsc -b && node packages/adapter-nats/bench/nats.bench.mjs)
//   BENCH_MESSAGES=50000 node packages/adapter-nats/bench/nats.bench.mjs      (a short run)
//
// Environment (all optional):
//   BUSLINE_NATS_URL        server (default nats://127.0.0.1:4222; start one with: bash scripts/brokers up nats)
//   BENCH_MESSAGES          messages per throughput case (default 200000)
//   BENCH_WINDOW            publishes in flight, for us and for raw js.publish (default 2048)
//   BENCH_RATE              offered rate of the latency case, msg/s (default 5000)
//   BENCH_LATENCY_SECONDS   duration of the latency case (default 10)
//   BENCH_CASES             comma list to run a subset: publish,consume,latency,group (default all)
//   BENCH_GROUP_PARTITIONS  partitions of the group case's topic (default 8)
//   BENCH_REPEATS           rounds of each throughput case, interleaved raw/ours; medians reported (default 3)
//   BENCH_MAX_ACK_PENDING   max_ack_pending of every consume case, raw and ours (default 2000)
//   BENCH_TELEMETRY         1 | metrics | tracing: bus.publish and both ordered subscribe cases run a second
//                           time each round with that telemetry on (OpenTelemetry SDK providers, no
//                           exporter; see tools/bench-telemetry.mjs), and off vs on is printed at the end
//   BENCH_NATS_CLI          0 skips the `nats bench` ceiling (natscli v0.5.0, the Go client, built once by
//                           scripts/brokers natscli-bin): js pub async --dedup, js pub fast --dedup and
//                           js consume --acks explicit, same server, same message count and size, file storage
//
// Every message is 256 bytes of payload on a persistent topic (file storage).
// Each case uses fresh streams, deleted afterwards. Cases:
//   publish   raw: js.publish() (with a msgID, like ours), W at a time, each window awaited (the
//                  baseline), and the same in windows of 256 (for reference: here the raw client
//                  is faster with 256 than with 2,048)
//             ours: bus.publish() with W calls in flight (sliding), and publishBatch() of 1,000
//   consume   raw: consumer.consume({max_messages: 500}) with m.ack() on every message, reading
//                  the same stored messages as ours (busline-published: 256-byte body plus the
//                  envelope headers), so only the consuming client differs (the baseline)
//             raw: the same on bare 256-byte messages without headers (for reference)
//             raw: the same messages read with `for await (const m of await consumer.consume())`,
//                  the form the nats.js README shows (for reference; the callback form above is
//                  the faster raw client and so the baseline)
//             raw: the same, acking cumulatively (AckPolicy all) every 250 messages (for reference)
//             ours: subscribe() with per-key order over 1,000 keys (order checked), explicit acks
//             ours: the same with ackMode "cumulative"
//   latency   ours: open loop at BENCH_RATE msg/s (sends scheduled by the clock, not by
//             completions); publish-to-handle time from the scheduled send time (HDR histogram)
//   group     ours: a backlog on a topic with BENCH_GROUP_PARTITIONS partitions drained by 1, 2
//             and 4 member processes of one group (partitioned consumer groups), with handlers
//             doing nothing and with handlers awaiting 2 ms (concurrency 8 per member)
// Rows marked "driver" run the NatsDriver alone (envelopes built before the clock starts,
// messages acked in the sink without decoding): what the adapter costs, without core's
// envelope validation, ordering pool and handler dispatch.
// Besides msg/s, each row shows the Node process's CPU time per message (user + system):
// on a shared machine wall-clock rates move with other load, CPU per message much less.
// When the server is the one scripts/brokers started here, its CPU time per message is
// shown too: client and server share this machine's cores, so msg/s is bounded by
// cores / (client + server CPU per message).
import os from 'node:os';
import { execFileSync, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { createEventBus, buildEnvelope, encodeEnvelope } from '@busline/core';
import { connect, nuid, createInbox } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import hdr from 'hdr-histogram-js';
import { brokerCpuReader } from '../../../tools/brokers/broker-cpu.mjs';
import { adapter, streamNameFor, NatsDriver, natsConfigSchema } from '../dist/index.js';
import { groupDrain } from './group.mjs';
import { benchTelemetry, overheadLine, telemetryFloor } from '../../../tools/bench-telemetry.mjs';

const URL_ = process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 2_048);
const RATE = Number(process.env.BENCH_RATE ?? 5_000);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 10);
const CASES = new Set((process.env.BENCH_CASES ?? 'publish,consume,latency,group').split(','));
const GROUP_PARTITIONS = Number(process.env.BENCH_GROUP_PARTITIONS ?? 8);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const MAX_ACK_PENDING = Number(process.env.BENCH_MAX_ACK_PENDING ?? 2_000);
const SIZE = 256;
const KEYS = 1_000;
const RUN = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const servers = URL_.replace(/^nats:\/\//, '');
const TELEMETRY = await benchTelemetry();
/** Label prefix of the telemetry-on rows (a prefix, so the off rows' lookups never match them). */
const ON = '[telemetry on] ';

const results = [];
const groupRows = [];
const created = [];
const nc = await connect({ servers, name: 'bench-admin' });
const jsm = await jetstreamManager(nc);

function payload(key, seq) {
  const bytes = new Uint8Array(SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, key);
  view.setUint32(4, seq);
  view.setFloat64(8, performance.timeOrigin + performance.now());
  return bytes;
}

async function freshStream(label) {
  const subject = `bench_${RUN}_${label}`;
  const name = `BENCHRAW_${RUN}_${label}`;
  await jsm.streams.add({ name, subjects: [subject], storage: 'file' });
  created.push(name);
  return { subject, name };
}

function busConfig(extra = {}) {
  return {
    url: URL_,
    source: 'bench',
    concurrency: 256,
    maxPending: 20_000,
    topicStrategy: 'createOnly',
    subscription: { maxInFlight: MAX_ACK_PENDING, concurrency: 256 },
    ...extra,
    nats: { publishWindow: WINDOW, ...(extra.nats ?? {}) },
  };
}

async function newBus(extra) {
  const bus = await createEventBus(busConfig(extra), { adapter });
  bus.on('error', (e, ctx) => console.error(`  bus error (${ctx}): ${e.message}`));
  await bus.start();
  return bus;
}

async function ourTopic(bus, label) {
  const topic = `bench_${RUN}_${label}`;
  await bus.configureTopic(topic, {});
  created.push(streamNameFor(topic, 'BL_'));
  return topic;
}

function rate(count, ms) {
  return Math.round(count / (ms / 1000));
}

function record(group, label, msgs, t, note = '') {
  const r = { group, label, msgs, ms: t.ms, rate: rate(msgs, t.ms), cpu: t.cpu / msgs, serverCpu: t.serverCpu / msgs, note };
  results.push(r);
  const server = Number.isFinite(r.serverCpu) ? `  server ${r.serverCpu.toFixed(2).padStart(5)} µs/msg` : '';
  console.log(`  ${label.padEnd(64)} ${String(r.rate).padStart(8)} msg/s  ${r.cpu.toFixed(2).padStart(6)} µs CPU/msg${server}${note ? `  ${note}` : ''}`);
  return r;
}

/** nats-server's CPU time (µs) when scripts/brokers started it here: client and server share the cores. */
const serverCpu = brokerCpuReader('nats', 'nats-server');

/** Times `run` (wall, this process's CPU and the server's). */
async function timed(run) {
  const c0 = process.cpuUsage();
  const s0 = serverCpu();
  const t0 = performance.now();
  const value = await run();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpu: c.user + c.system, serverCpu: serverCpu() - s0, value };
}

async function streamCount(name) {
  return (await jsm.streams.info(name)).state.messages;
}

// ---------------------------------------------------------------- publish

async function rawPublish(window = WINDOW) {
  const { subject, name } = await freshStream(`rawpub${window}`);
  const js = jetstream(nc);
  const body = payload(0, 0);
  const t = await timed(async () => {
    for (let i = 0; i < N; i += window) {
      const n = Math.min(window, N - i);
      const batch = new Array(n);
      for (let j = 0; j < n; j++) batch[j] = js.publish(subject, body, { msgID: nuid.next() });
      await Promise.all(batch);
    }
  });
  const stored = await streamCount(name);
  await jsm.streams.delete(name);
  return record('publish', `raw js.publish, windows of ${window} awaited`, N, t, stored === N ? '' : `STORED ${stored}`);
}

async function ourPublish(telemetry) {
  const bus = await newBus({ group: 'pub', ...(telemetry ? { telemetry } : {}) });
  const topic = await ourTopic(bus, 'ourpub');
  const bodies = Array.from({ length: KEYS }, (_, k) => payload(k, 0));
  let next = 0;
  let failed = 0;
  async function lane() {
    while (next < N) {
      const i = next++;
      try {
        await bus.publish(topic, bodies[i % KEYS], { aggregateId: `k${i % KEYS}` });
      } catch {
        failed++;
      }
    }
  }
  const t = await timed(() => Promise.all(Array.from({ length: WINDOW }, lane)));
  const stored = await streamCount(streamNameFor(topic, 'BL_'));
  await bus.close();
  await jsm.streams.delete(streamNameFor(topic, 'BL_'));
  return record('publish', `${telemetry ? ON : ''}busline bus.publish, ${WINDOW} calls in flight`, N, t, stored === N && failed === 0 ? '' : `STORED ${stored} FAILED ${failed}`);
}

async function ourPublishBatch() {
  const bus = await newBus({ group: 'pubb' });
  const topic = await ourTopic(bus, 'ourpubb');
  const CHUNK = 1_000;
  const items = Array.from({ length: CHUNK }, (_, j) => ({ payload: payload(j % KEYS, 0), aggregateId: `k${j % KEYS}` }));
  let failed = 0;
  const inflight = Math.max(1, Math.floor(WINDOW / CHUNK));
  let next = 0;
  async function lane() {
    while (next < N) {
      const n = Math.min(CHUNK, N - next);
      next += n;
      const r = await bus.publishBatch(topic, n === CHUNK ? items : items.slice(0, n));
      failed += r.failed.length;
    }
  }
  const t = await timed(() => Promise.all(Array.from({ length: inflight }, lane)));
  const stored = await streamCount(streamNameFor(topic, 'BL_'));
  await bus.close();
  await jsm.streams.delete(streamNameFor(topic, 'BL_'));
  return record('publish', `busline publishBatch of ${CHUNK}, ${inflight} in flight`, N, t, stored === N && failed === 0 ? '' : `STORED ${stored} FAILED ${failed}`);
}

/** The driver alone: envelopes built and encoded before the clock starts; one message per call, WINDOW calls in flight. */
async function driverPublish() {
  const bus = await newBus({ group: 'pubd' });
  const topic = await ourTopic(bus, 'drvpub');
  const messages = Array.from({ length: N }, (_, i) => encodeEnvelope(buildEnvelope(payload(i % KEYS, 0), { aggregateId: `k${i % KEYS}` }, { type: topic, source: 'bench' })));
  const options = { timeoutMs: 10_000, topic: { persistence: 'persistent' } };
  let next = 0;
  let failed = 0;
  async function lane() {
    while (next < N) {
      const [outcome] = await bus.driver.publish(topic, [messages[next++]], options);
      if (outcome) failed++;
    }
  }
  const t = await timed(() => Promise.all(Array.from({ length: WINDOW }, lane)));
  const stored = await streamCount(streamNameFor(topic, 'BL_'));
  await bus.close();
  await jsm.streams.delete(streamNameFor(topic, 'BL_'));
  return record('publish', `busline driver.publish alone (envelopes pre-built), ${WINDOW} in flight`, N, t, stored === N && failed === 0 ? '' : `STORED ${stored} FAILED ${failed}`);
}

// ---------------------------------------------------------------- consume

/** N messages on a fresh raw stream, published fast (pipelined with a reply inbox, like our publisher). */
async function rawFill(label) {
  const s = await freshStream(label);
  const body = payload(0, 0);
  const inbox = createInbox();
  let sent = 0;
  let acked = 0;
  await new Promise((resolve) => {
    const sub = nc.subscribe(`${inbox}.*`, {
      callback: () => {
        if (++acked === N) {
          sub.unsubscribe();
          resolve();
        } else if (sent < N) nc.publish(s.subject, body, { reply: `${inbox}.${sent++}` });
      },
    });
    for (; sent < Math.min(WINDOW, N); sent++) nc.publish(s.subject, body, { reply: `${inbox}.${sent}` });
  });
  return s;
}

/**
 * Raw nats.js `consume()` on a fresh stream. `messages` = 'busline': the very messages our
 * subscribe cases read (envelope headers included), so only the consuming client differs;
 * 'bare': 256-byte bodies without any header (less for the server to send and the client to parse).
 */
async function rawConsume(ackEvery, messages = 'busline', form = 'callback') {
  const label = `raw${ackEvery === 1 ? 'exp' : 'all'}${messages}${form}`;
  const s = messages === 'bare' ? await rawFill(label) : await busFill(label);
  const durable = 'raw';
  await jsm.consumers.add(s.name, {
    durable_name: durable,
    ack_policy: ackEvery === 1 ? AckPolicy.Explicit : AckPolicy.All,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: MAX_ACK_PENDING,
  });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(s.name, durable);
  let n = 0;
  const t = await timed(async () => {
    if (form === 'iterator') {
      // The form nats.js documents: an async iterator of messages.
      const messages = await consumer.consume({ max_messages: 500 });
      for await (const m of messages) {
        m.ack();
        if (++n === N) break;
      }
      return;
    }
    await new Promise((resolve) => {
      let iter;
      consumer
        .consume({
          max_messages: 500,
          callback: (m) => {
            n++;
            if (ackEvery === 1 || n % ackEvery === 0 || n === N) m.ack();
            if (n === N) {
              resolve();
              iter.stop();
            }
          },
        })
        .then((m) => (iter = m));
    });
  });
  await jsm.streams.delete(s.name);
  const what = messages === 'bare' ? 'bare 256-byte messages' : 'busline messages';
  const how = form === 'iterator' ? 'raw consume() as async iterator' : 'raw consume()';
  return record('consume', ackEvery === 1 ? `${how}, m.ack() each, ${what}` : `${how}, AckPolicy all, ack every ${ackEvery}, ${what}`, N, t);
}

/** N busline messages over KEYS keys on a fresh topic; per-key sequence = index / KEYS, so order can be checked. */
async function busFill(label, telemetry) {
  // With telemetry the messages carry trace context, as a traced producer's would.
  const publisher = await newBus({ group: `fill${label}`, ...(telemetry ? { telemetry } : {}) });
  const topic = await ourTopic(publisher, label);
  for (let i = 0; i < N; i += 1_000) {
    const n = Math.min(1_000, N - i);
    const batch = Array.from({ length: n }, (_, j) => ({ payload: payload((i + j) % KEYS, Math.floor((i + j) / KEYS)), aggregateId: `k${(i + j) % KEYS}` }));
    const r = await publisher.publishBatch(topic, batch);
    if (r.failed.length) throw new Error(`fill failed: ${r.failed[0].error.message}`);
  }
  await publisher.close();
  return { topic, name: streamNameFor(topic, 'BL_') };
}

async function ourConsume(ackMode, telemetry) {
  const label = `our${ackMode}${telemetry ? 'tel' : ''}`;
  const { topic } = await busFill(label, telemetry);
  const consumer = await newBus({ group: `c${label}`, nats: { ackMode }, ...(telemetry ? { telemetry } : {}) });
  const next = new Int32Array(KEYS);
  let handled = 0;
  let violations = 0;
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  const t = await timed(async () => {
    await consumer.subscribe(
      topic,
      (p) => {
        const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
        const k = view.getUint32(0);
        const seq = view.getUint32(4);
        if (next[k] !== seq) violations++;
        next[k] = seq + 1;
        if (++handled === N) resolveDone();
      },
      { ordering: 'key' },
    );
    await done;
  });
  const driver = consumer.metrics().driver;
  await consumer.close();
  await jsm.streams.delete(streamNameFor(topic, 'BL_'));
  return record(
    'consume',
    `${telemetry ? ON : ''}busline subscribe, per-key order (1,000 keys), ${ackMode} acks`,
    N,
    t,
    `${violations} order violations${ackMode === 'cumulative' ? `, ${driver.ack_all_sent ?? 0} ack-alls` : ''}`,
  );
}

/** The driver alone: a sink that acks every message without decoding it. */
async function driverConsume(ackMode) {
  const { topic } = await busFill(`drv${ackMode}`);
  const driver = new NatsDriver(natsConfigSchema.parse({ servers: [URL_], ackMode }));
  await driver.connect({ hooks: { connection() {}, error(e) { console.error(`  driver error: ${e.message}`); }, count() {} }, plannedConsumers: [] });
  let handled = 0;
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  const t = await timed(async () => {
    await driver.subscribe(
      { topic, group: 'drv', persistence: 'persistent', maxInFlight: MAX_ACK_PENDING, startFrom: 'earliest' },
      {
        deliver(batch) {
          for (const m of batch) {
            m.ack();
            if (++handled === N) resolveDone();
          }
        },
      },
    );
    await done;
  });
  await driver.close();
  await jsm.streams.delete(streamNameFor(topic, 'BL_'));
  return record('consume', `busline driver alone (no decode), ${ackMode} acks`, N, t);
}

// ---------------------------------------------------------------- latency

async function latency() {
  const publisher = await newBus({ group: 'latp' });
  const consumer = await newBus({ group: 'latc' });
  const topic = await ourTopic(publisher, 'latency');
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  const total = RATE * LATENCY_SECONDS;
  let handled = 0;
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  await consumer.subscribe(
    topic,
    (p) => {
      const sent = new DataView(p.buffer, p.byteOffset, p.byteLength).getFloat64(8);
      histogram.recordValue(Math.max(1, Math.round((performance.timeOrigin + performance.now() - sent) * 1000)));
      if (++handled === total) resolveDone();
    },
    { ordering: 'key' },
  );
  // Open loop: message i is due at start + i / RATE; a tick sends everything due, stamped with its due time.
  const start = performance.timeOrigin + performance.now();
  let sent = 0;
  const failures = [];
  while (sent < total) {
    const now = performance.timeOrigin + performance.now();
    const due = Math.min(total, Math.floor(((now - start) / 1000) * RATE) + 1);
    for (; sent < due; sent++) {
      const body = payload(sent % KEYS, 0);
      new DataView(body.buffer).setFloat64(8, start + (sent * 1000) / RATE);
      publisher.publish(topic, body, { aggregateId: `k${sent % KEYS}` }).catch((e) => failures.push(e));
    }
    await sleep(1);
  }
  await done;
  await publisher.close();
  await consumer.close();
  const us = (q) => histogram.getValueAtPercentile(q) / 1000;
  const r = {
    group: 'latency',
    label: `busline publish-to-handle at ${RATE} msg/s open loop, ${LATENCY_SECONDS} s`,
    p50: us(50),
    p99: us(99),
    p999: us(99.9),
    max: histogram.maxValue / 1000,
    failures: failures.length,
  };
  results.push(r);
  console.log(`  ${r.label}: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, p99.9 ${r.p999.toFixed(2)} ms, max ${r.max.toFixed(2)} ms, ${r.failures} failed`);
}

// ---------------------------------------------------------------- main

function serverVersion() {
  return nc.info?.version ?? '?';
}

console.log(`busline NATS benchmark — ${N} messages of ${SIZE} bytes, window ${WINDOW}, server ${URL_} (nats-server ${serverVersion()})`);
console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()} ${os.release()}`);
let commit = '';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
} catch {}
if (commit) console.log(`commit ${commit}`);

try {
  for (let round = 1; round <= REPEATS; round++) {
    console.log(`round ${round} of ${REPEATS}`);
    if (CASES.has('publish')) {
      await rawPublish();
      await rawPublish(256);
      await ourPublish();
      if (TELEMETRY) await ourPublish(TELEMETRY);
      await ourPublishBatch();
      await driverPublish();
    }
    if (CASES.has('consume')) {
      await rawConsume(1);
      await rawConsume(1, 'bare');
      await rawConsume(1, 'busline', 'iterator');
      await ourConsume('explicit');
      if (TELEMETRY) await ourConsume('explicit', TELEMETRY);
      await rawConsume(250);
      await ourConsume('cumulative');
      if (TELEMETRY) await ourConsume('cumulative', TELEMETRY);
      await driverConsume('explicit');
      await driverConsume('cumulative');
    }
  }
  if (CASES.has('latency')) {
    console.log('latency:');
    await latency();
  }
  if (CASES.has('group')) {
    console.log(`group: a backlog drained by member processes of one group, ${GROUP_PARTITIONS} partitions:`);
    await groupCases();
  }
} finally {
  for (const name of created) await jsm.streams.delete(name).catch(() => undefined);
}

/** 1, 2 and 4 member processes draining one backlog: handlers doing nothing, and handlers waiting 2 ms (I/O-bound work). */
async function groupCases() {
  const workloads = [
    { label: 'no-op handler', messages: Math.min(N, 50_000), handlerMs: 0, concurrency: 256 },
    { label: 'handler awaits 2 ms, concurrency 8', messages: Math.min(N, 10_000), handlerMs: 2, concurrency: 8 },
  ];
  for (const w of workloads) {
    for (const members of [1, 2, 4]) {
      const topic = `bench_${RUN}_group${members}_${w.handlerMs}`;
      created.push(streamNameFor(topic, 'BL_'));
      const t = await groupDrain({ url: URL_, newBus, topic, members, partitions: GROUP_PARTITIONS, maxAckPending: MAX_ACK_PENDING, ...w });
      const r = { label: w.label, members, rate: rate(w.messages, t.ms), perMember: t.perMember };
      groupRows.push(r);
      console.log(`  ${w.label}, ${members} member(s): ${String(r.rate).padStart(7)} msg/s  (per member ${t.perMember.join(' / ')})`);
    }
  }
}

/** The median run of each case (by rate). */
function median(prefix) {
  const runs = results.filter((r) => r.label.startsWith(prefix)).sort((x, y) => x.rate - y.rate);
  if (runs.length === 0) return undefined;
  const mid = runs[Math.floor((runs.length - 1) / 2)];
  const mid2 = (xs) => xs.sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)];
  return { ...mid, cpu: mid2(runs.map((r) => r.cpu)), serverCpu: mid2(runs.map((r) => r.serverCpu)), runs: runs.length, all: runs.map((r) => r.rate) };
}

const find = median;
const rawPub = find(`raw js.publish, windows of ${WINDOW} `);
const rawPub256 = WINDOW === 256 ? undefined : find('raw js.publish, windows of 256 ');
const ourPub = find('busline bus.publish');
const ourBatch = find('busline publishBatch');
const drvPub = find('busline driver.publish');
const rawExp = find('raw consume(), m.ack() each, busline');
const rawExpIter = find('raw consume() as async iterator, m.ack() each');
const rawExpBare = find('raw consume(), m.ack() each, bare');
const rawAll = find('raw consume(), AckPolicy all');
const ourExp = find('busline subscribe, per-key order (1,000 keys), explicit');
const ourCum = find('busline subscribe, per-key order (1,000 keys), cumulative');
const drvExp = find('busline driver alone (no decode), explicit');
const drvCum = find('busline driver alone (no decode), cumulative');
const lat = results.find((r) => r.group === 'latency');

/**
 * `nats bench` (natscli, the Go client: no envelope, no ordering) on the same server, with the same
 * dedupe: the ceiling. Runs after our cases, on a stream of its own that it deletes afterwards.
 */
function natsCliCeilings() {
  if (process.env.BENCH_NATS_CLI === '0') return {};
  let cli;
  try {
    cli = execFileSync('bash', [new URL('../../../scripts/brokers', import.meta.url).pathname, 'natscli-bin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  } catch {
    console.log('nats bench: natscli could not be built (see above); the ceiling rows are left out');
    return {};
  }
  const stream = `BLNATSBENCH${Date.now().toString(36)}`;
  const run = (label, args) => {
    console.log(`  nats bench ${args.slice(0, 3).join(' ')} …`);
    // Through bash so its `times` reports the CLI's CPU (children's user and system time) next to the server's.
    const s0 = serverCpu();
    const out = spawnSync('bash', ['-c', '"$@" && times', 'natscli', cli, '-s', URL_, 'bench', ...args, '--msgs', String(N), '--size', String(SIZE), '--no-progress', '--stream', stream], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    const server = (serverCpu() - s0) / N;
    const m = /([\d,]+) msgs\/sec/.exec(`${out.stdout}${out.stderr}`);
    if (!m) {
      console.log(`  nats bench ${label}: no rate in its output (exit ${out.status}): ${(out.stderr || out.stdout).trim().split('\n').slice(-2).join(' / ')}`);
      return undefined;
    }
    const rate = Number(m[1].replace(/,/g, ''));
    const times = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(out.stdout.trim());
    const cpu = times ? ((Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4])) * 1e6) / N : NaN;
    console.log(`  nats bench ${label}: ${rate} msg/s`);
    return { rate, cpu, serverCpu: server };
  };
  const subject = `${stream}.bench`;
  const common = ['--create', '--purge', '--storage', 'file', '--dedup'];
  const pubAsync = run('js pub async --dedup', ['js', 'pub', 'async', subject, ...common]);
  const consume = run('js consume --acks explicit', ['js', 'consume', '--acks', 'explicit']);
  const pubFast = run('js pub fast --dedup', ['js', 'pub', 'fast', subject, ...common]);
  // Without dedupe, for what Nats-Msg-Id costs the server on each path (busline always sends one).
  const plain = common.filter((a) => a !== '--dedup');
  const pubAsyncPlain = run('js pub async (no dedup)', ['js', 'pub', 'async', subject, ...plain]);
  const pubFastPlain = run('js pub fast (no dedup)', ['js', 'pub', 'fast', subject, ...plain]);
  spawnSync(cli, ['-s', URL_, 'stream', 'rm', stream, '-f'], { encoding: 'utf8' });
  return { pubAsync, consume, pubFast, pubAsyncPlain, pubFastPlain };
}
console.log('ceiling (natscli):');
const cli = natsCliCeilings();

const rows = [];
const ratio = (a, b) => (a && b ? `${(a.rate / b.rate).toFixed(2)}x` : '');
const fixed = (v) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
const line = (what, r, base, target, pass) => {
  if (!r) return;
  const judged = target !== undefined && !target.startsWith('(');
  rows.push([what, String(r.rate), fixed(r.cpu), fixed(r.serverCpu), base ? ratio(r, base) : '', target ?? '', judged ? (pass ? 'yes' : 'NO') : '']);
};
line(`raw js.publish, awaited windows of ${WINDOW} (baseline)`, rawPub);
line('raw js.publish, awaited windows of 256', rawPub256, rawPub, '(info)');
line('busline bus.publish', ourPub, rawPub, '>= 5x raw js.publish', ourPub && rawPub && ourPub.rate >= 5 * rawPub.rate);
line('busline bus.publish vs raw at window 256', ourPub, rawPub256, '(info)');
line('busline publishBatch (1,000 per call)', ourBatch, rawPub, '(info)');
line('busline driver.publish alone', drvPub, rawPub, '(info)');
line('raw consume(), ack each, same messages (baseline)', rawExp);
line('raw consume(), ack each, bare 256 B, no headers', rawExpBare, rawExp, '(info)');
line('raw consume() as async iterator, ack each, same messages', rawExpIter, rawExp, '(info)');
line('raw consume(), ack-all every 250, same messages', rawAll, rawExp, '(info)');
line('busline subscribe, key order, explicit acks', ourExp, rawExp, '>= 1x raw ack each', ourExp && rawExp && ourExp.rate >= rawExp.rate);
line('busline subscribe, key order, cumulative acks', ourCum, rawExp, '>= 2x raw ack each', ourCum && rawExp && ourCum.rate >= 2 * rawExp.rate);
line('busline subscribe, explicit acks, vs the async iterator', ourExp, rawExpIter, '(info)');
line('busline driver alone, explicit acks', drvExp, rawExp, '(info)');
line('busline driver alone, cumulative acks', drvCum, rawExp, '(info)');
line('nats bench js pub async --dedup (natscli, Go: the ceiling)', cli.pubAsync);
line('busline bus.publish vs nats bench js pub async --dedup', ourPub, cli.pubAsync, '>= 1x nats bench', ourPub && cli.pubAsync && ourPub.rate >= cli.pubAsync.rate);
line('nats bench js pub fast --dedup (ceiling)', cli.pubFast);
line('busline publishBatch vs nats bench js pub fast --dedup', ourBatch, cli.pubFast, '>= 1x nats bench', ourBatch && cli.pubFast && ourBatch.rate >= cli.pubFast.rate);
line('nats bench js pub async, no dedup (what dedupe costs: vs the --dedup row)', cli.pubAsyncPlain, cli.pubAsync, '(info)');
line('nats bench js pub fast, no dedup (what dedupe costs on fast ingest)', cli.pubFastPlain, cli.pubFast, '(info)');
line('nats bench js consume --acks explicit (ceiling)', cli.consume);
line('busline subscribe, key order, explicit acks vs nats bench js consume', ourExp, cli.consume, '>= 1x nats bench', ourExp && cli.consume && ourExp.rate >= cli.consume.rate);
console.log(`\nmedians of ${REPEATS} interleaved round(s), ${N} messages of ${SIZE} bytes, window ${WINDOW}`);
console.log('| case | msg/s | client CPU µs/msg (Node; Go for nats bench) | server CPU µs/msg | vs baseline | target | met |\n| --- | ---: | ---: | ---: | ---: | --- | --- |');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
if (groupRows.length > 0) {
  console.log(`\ngroup throughput, ${GROUP_PARTITIONS} partitions, member processes of one group (client processes and server share the machine's ${os.cpus().length} cores)`);
  console.log('| handler | members | msg/s | vs 1 member | handled per member |\n| --- | ---: | ---: | ---: | --- |');
  for (const r of groupRows) {
    const one = groupRows.find((o) => o.label === r.label && o.members === 1);
    console.log(`| ${r.label} | ${r.members} | ${r.rate} | ${one ? (r.rate / one.rate).toFixed(2) : ''}x | ${r.perMember.join(' / ')} |`);
  }
}
if (TELEMETRY) {
  console.log(`\nmedians of ${REPEATS} round(s); the off and on runs of a case are neighbours in each round`);
  const floor = await telemetryFloor();
  console.log(overheadLine('bus.publish', ourPub, find(`${ON}busline bus.publish`), floor.publish));
  console.log(overheadLine('subscribe, key order, explicit acks', ourExp, find(`${ON}busline subscribe, per-key order (1,000 keys), explicit`), floor.consume));
  console.log(overheadLine('subscribe, key order, cumulative acks', ourCum, find(`${ON}busline subscribe, per-key order (1,000 keys), cumulative`), floor.consume));
}
if (lat) console.log(`\nlatency at ${RATE} msg/s (open loop, ${LATENCY_SECONDS} s): p50 ${lat.p50.toFixed(2)} ms, p99 ${lat.p99.toFixed(2)} ms, p99.9 ${lat.p999.toFixed(2)} ms, max ${lat.max.toFixed(2)} ms, ${lat.failures} failed`);
await nc.close();
