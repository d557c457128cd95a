// In-memory adapter throughput: publish → handle, end to end through the
// EventBus, with 1,000 keys and per-key order checked; plus the broker alone.
//
//   pnpm bench:memory        (= pnpm build && node packages/adapter-memory/bench/memory.bench.mjs)
//   BENCH_MESSAGES=200000 BENCH_REPEATS=3 pnpm bench:memory
//   BENCH_TELEMETRY=1 pnpm bench:memory   (each EventBus case also with metrics + tracing on; prints the ratio;
//                                          =metrics or =tracing for one of them)
//
// Each case publishes N messages over KEYS aggregate ids (message i has key
// i % KEYS and per-key sequence floor(i / KEYS)) and times from the first
// publish until the last message is handled. The handler checks that each
// key's sequence arrives as 0, 1, 2, … : any other value is counted as an
// order violation (a duplicate counts too). Every case runs REPEATS times on
// a fresh broker after one smaller warm-up run; the median rate is reported.
//
// With BENCH_TELEMETRY=1 each EventBus case runs a second time with
// telemetry on both buses, against OpenTelemetry SDK providers that export
// nothing (tools/bench-telemetry.mjs): the cost of measuring, creating spans
// and carrying trace context, without an exporter's. The table then has both rows, and the
// overhead (on ÷ off, for end-to-end rate and for CPU per message) follows it.
//
// Every figure printed comes from this script on the machine it runs on.
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { createEventBus } from '@busline/core';
import { adapter, MemoryBroker, dropMemoryBroker } from '../dist/index.js';
import { benchTelemetry, telemetryFloor, telemetryLabel } from '../../../tools/bench-telemetry.mjs';

const N = Number(process.env.BENCH_MESSAGES ?? 500_000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const KEYS = 1_000;
const CHUNK = 1_000; // items per publishBatch call
const WINDOW = 1_000; // concurrent publish calls in flight
const TARGET = 500_000;

const keys = Array.from({ length: KEYS }, (_, i) => `order-${i}`);
let runSeq = 0;

/** Per-key order checker: expects 0, 1, 2, … per key. */
function orderChecker(total) {
  const next = new Int32Array(KEYS);
  let handled = 0;
  let violations = 0;
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  return {
    done,
    get handled() {
      return handled;
    },
    get violations() {
      return violations;
    },
    see(k, seq) {
      if (next[k] !== seq) violations++;
      next[k] = seq + 1;
      if (++handled === total) resolveDone(performance.now());
    },
  };
}

// ------------------------------------------------------------ EventBus cases

async function busCase(total, publishMode, telemetry) {
  const broker = `bench-${process.pid}-${++runSeq}`;
  const config = { type: 'memory', memory: { broker }, source: 'bench', concurrency: 256, maxPending: 20_000, logger: false, ...(telemetry ? { telemetry } : {}) };
  const consumer = await createEventBus({ ...config, group: 'bench' }, { adapter });
  const producer = await createEventBus(config, { adapter });
  await consumer.start();
  await producer.start();
  const topic = 'bench.orders';
  await producer.configureTopic(topic, {});
  const check = orderChecker(total);
  const errors = [];
  consumer.on('error', (e) => errors.push(e));
  await consumer.subscribe(topic, (p) => check.see(p.k, p.s), { ordering: 'key', concurrency: 64, maxInFlight: 2_000 });

  const cpu0 = process.cpuUsage();
  const start = performance.now();
  if (publishMode === 'batch') {
    const items = new Array(CHUNK);
    for (let from = 0; from < total; from += CHUNK) {
      const n = Math.min(CHUNK, total - from);
      items.length = n;
      for (let j = 0; j < n; j++) {
        const i = from + j;
        const k = i % KEYS;
        items[j] = { payload: { k, s: (i - k) / KEYS }, aggregateId: keys[k] };
      }
      const result = await producer.publishBatch(topic, items);
      if (result.failed.length) throw result.failed[0].error;
      await yieldToLoop(); // let consumers run alongside, as a real producer would
    }
  } else {
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const k = i % KEYS;
        await producer.publish(topic, { k, s: (i - k) / KEYS }, { aggregateId: keys[k] });
        if ((i & 1023) === 0) await yieldToLoop();
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
  }
  const published = performance.now();
  const end = await Promise.race([check.done, new Promise((r) => setTimeout(() => r(undefined), 120_000).unref())]);
  if (end === undefined) throw new Error(`only ${check.handled} of ${total} handled within 120 s`);
  const cpu = cpuSeconds(cpu0);
  await producer.close();
  await consumer.close();
  dropMemoryBroker(broker);
  if (errors.length) throw errors[0];
  return { publishRate: total / ((published - start) / 1000), rate: total / ((end - start) / 1000), cpuRate: total / cpu, violations: check.violations };
}

/** CPU seconds (user + system, all threads: GC included) since `from`. */
function cpuSeconds(from) {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

// --------------------------------------------------------------- broker only

function wireMessages(total) {
  const encoder = new TextEncoder();
  const out = new Array(total);
  for (let i = 0; i < total; i++) {
    const k = i % KEYS;
    out[i] = {
      key: keys[k],
      headers: { 'ce-id': `${runSeq}-${i}`, 'x-seq': String(i), 'ce-type': 'order.placed', 'ce-source': 'bench', 'content-type': 'application/json' },
      body: encoder.encode(`{"k":${k},"s":${(i - k) / KEYS}}`),
    };
  }
  return out;
}

async function brokerCase(total, dedupeWindowMs) {
  ++runSeq;
  const messages = wireMessages(total);
  const broker = new MemoryBroker(`bench-broker-${runSeq}`, { dedupeWindowMs });
  const check = orderChecker(total);
  broker.subscribe({ topic: 't', group: 'g', maxInFlight: 2_000 }, {
    deliver(batch) {
      for (const m of batch) {
        const i = +m.headers['x-seq'];
        const k = i % KEYS;
        check.see(k, (i - k) / KEYS);
        m.ack();
      }
    },
  });
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  for (let from = 0; from < total; from += CHUNK) broker.publish('t', messages.slice(from, from + CHUNK));
  const published = performance.now();
  const end = await check.done;
  const cpu = cpuSeconds(cpu0);
  return { publishRate: total / ((published - start) / 1000), rate: total / ((end - start) / 1000), cpuRate: total / cpu, violations: check.violations };
}

// -------------------------------------------------------------------- runner

const busCases = [
  { name: 'EventBus: publishBatch (1,000/call) → handle', mode: 'batch' },
  { name: `EventBus: publish, ${WINDOW} concurrent → handle`, mode: 'concurrent' },
];
const telemetry = await benchTelemetry();
// Cases of one entry run their repeats back to back; a telemetry off/on pair takes turns, so load from elsewhere hits both alike.
const cases = [
  ...busCases.map((c) => [
    { name: c.name, run: (n) => busCase(n, c.mode), endToEnd: true },
    ...(telemetry ? [{ name: `${c.name} [telemetry on]`, run: (n) => busCase(n, c.mode, telemetry), endToEnd: true, telemetryOf: c.name }] : []),
  ]),
  [{ name: 'broker only: publish → deliver → ack (dedupe on)', run: (n) => brokerCase(n, 120_000) }],
  [{ name: 'broker only: publish → deliver → ack (dedupe off)', run: (n) => brokerCase(n, 0) }],
];

// A full collection before each timed run, so one run's garbage is not billed to the next.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString('en-US');

console.log(`@busline/adapter-memory benchmark — ${N.toLocaleString('en-US')} messages, ${KEYS} keys, median of ${REPEATS}`);
console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${os.platform()} ${os.arch()}\n`);

const only = process.env.BENCH_CASES; // e.g. BENCH_CASES=broker
const rows = [];
for (const group of cases.filter((g) => !only || g[0].name.includes(only))) {
  for (const c of group) await c.run(Math.min(N, 50_000)); // warm-up
  const runsOf = group.map(() => []);
  for (let r = 0; r < REPEATS; r++) {
    for (const [i, c] of group.entries()) {
      collectGarbage();
      runsOf[i].push(await c.run(N));
    }
  }
  for (const [i, c] of group.entries()) {
    const runs = runsOf[i];
    rows.push({
      name: c.name,
      endToEnd: c.endToEnd === true,
      rate: median(runs.map((x) => x.rate)),
      publishRate: median(runs.map((x) => x.publishRate)),
      cpuRate: median(runs.map((x) => x.cpuRate)),
      violations: runs.reduce((s, x) => s + x.violations, 0),
      telemetryOf: c.telemetryOf,
    });
  }
}

const w = Math.max(...rows.map((r) => r.name.length));
const cols = ['end-to-end msg/s', 'publish msg/s', 'msg per CPU-s', 'order violations'];
console.log(`${'case'.padEnd(w)}  ${cols.join('  ')}`);
console.log(`${'-'.repeat(w)}  ${cols.map((c) => '-'.repeat(c.length)).join('  ')}`);
for (const r of rows) {
  const cells = [fmt(r.rate), fmt(r.publishRate), fmt(r.cpuRate), String(r.violations)];
  console.log(`${r.name.padEnd(w)}  ${cells.map((x, i) => x.padStart(cols[i].length)).join('  ')}`);
}
const floor = telemetry ? await telemetryFloor() : undefined;
for (const on of rows.filter((r) => r.telemetryOf !== undefined)) {
  const off = rows.find((r) => r.name === on.telemetryOf);
  if (off === undefined) continue;
  const cpuOverhead = off.cpuRate / on.cpuRate - 1;
  // Both buses run in this process: the SDK's floor is a publish side and a consume side per message (one send span per batch call).
  const perMessage = floor && (on.name.includes('publishBatch') ? floor.publish / CHUNK : floor.publish) + floor.consume;
  const sdk = perMessage ? `; the SDK alone: ${perMessage.toFixed(2)} µs per message (+${((perMessage * off.cpuRate) / 1e4).toFixed(1)} % of off)` : '';
  console.log(
    `\ntelemetry overhead (${telemetryLabel()}), ${off.name}: end-to-end on/off ${(on.rate / off.rate).toFixed(3)}, ` +
      `CPU per message ${cpuOverhead >= 0 ? '+' : ''}${(cpuOverhead * 100).toFixed(1)} %${sdk} (target ≤ 10 %)`,
  );
}
const load = os.loadavg()[0];
if (load > os.cpus().length) {
  console.log(`\nnote: load average ${load.toFixed(1)} on ${os.cpus().length} CPUs — other processes competed for the CPU; wall-clock rates are low, "msg per CPU-s" is the steadier figure`);
}

const e2e = rows.filter((r) => r.endToEnd);
if (e2e.length === 0) process.exit(rows.every((r) => r.violations === 0) ? 0 : 1);
const best = Math.min(...e2e.map((r) => r.rate));
const ordered = e2e.every((r) => r.violations === 0);
const met = best >= TARGET && ordered;
console.log(
  `\ntarget: >= ${fmt(TARGET)} msg/s end to end with per-key order — ${met ? 'MET' : 'NOT MET'} ` +
    `(slowest end-to-end case ${fmt(best)} msg/s, ${ordered ? 'no' : 'SOME'} order violations)`,
);
if (!ordered) process.exitCode = 1;
