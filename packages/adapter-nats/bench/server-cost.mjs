// What nats-server spends per stored message, by what the message carries: the part of
// publishing that no client can make cheaper. The msg/s of the last case is about what the
// server takes of busline's messages when the client does next to nothing per message. Every case publishes the same way (pipelined,
// reply subject on one wildcard inbox, WINDOW in flight, like busline's publisher) to a fresh
// file-storage stream; only the headers differ:
//   bare            256-byte body, no headers
//   msg id only     + Nats-Msg-Id (JetStream's dedupe check)
//   busline, no id  the envelope headers busline writes (ce-*, content-type), no Nats-Msg-Id
//   busline         the envelope headers + Nats-Msg-Id: what bus.publish sends
//
//   node packages/adapter-nats/bench/server-cost.mjs      (after tsc -b, with bash scripts/brokers up nats)
//
// Server CPU is read from /proc for the server scripts/brokers started. Environment:
// BUSLINE_NATS_URL, BENCH_MESSAGES (default 200000), BENCH_WINDOW (2048), BENCH_REPEATS (3).
import { connect, createInbox, nuid } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { buildEnvelope, encodeEnvelope } from '@busline/core';
import { brokerCpuReader } from '../../../tools/brokers/broker-cpu.mjs';
import { encodeHeaders } from '../dist/wire.js';

const URL_ = process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 2_048);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const RUN = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

const serverCpu = brokerCpuReader('nats', 'nats-server');
if (!Number.isFinite(serverCpu())) {
  console.error('server-cost: no CPU reading for nats-server (start it with: bash scripts/brokers up nats)');
  process.exit(1);
}
const nc = await connect({ servers: URL_.replace(/^nats:\/\//, ''), name: 'bench-server-cost' });
const jsm = await jetstreamManager(nc);
const body = new Uint8Array(256);

/** The header block of a busline message to `topic` (a fresh event id and time each call). */
function buslineHeaders(topic) {
  return encodeEnvelope(buildEnvelope(body, { aggregateId: `k${Math.floor(Math.random() * 1_000)}` }, { type: topic, source: 'bench' })).headers;
}

const CASES = {
  bare: () => undefined,
  'msg id only': () => encodeHeaders({}, nuid.next()),
  'busline, no id': (topic) => encodeHeaders(buslineHeaders(topic), undefined),
  busline: (topic) => {
    const headers = buslineHeaders(topic);
    return encodeHeaders(headers, headers['ce-id']);
  },
};

async function run(label, headersFor) {
  const slug = label.replace(/[^a-z]/g, '');
  const name = `BENCHCOST_${RUN}_${slug}`;
  const subject = `bench_${RUN}_cost_${slug}`;
  await jsm.streams.add({ name, subjects: [subject], storage: 'file' });
  // Built before the clock starts: the client's work is not what is measured here.
  const headers = Array.from({ length: N }, () => headersFor(subject));
  const inbox = createInbox();
  let sent = 0;
  let acked = 0;
  const s0 = serverCpu();
  const t0 = performance.now();
  await new Promise((resolve) => {
    const send = () => {
      const h = headers[sent];
      nc.publish(subject, body, h ? { reply: `${inbox}.${sent++}`, headers: h } : { reply: `${inbox}.${sent++}` });
    };
    const sub = nc.subscribe(`${inbox}.*`, {
      callback: () => {
        if (++acked === N) {
          sub.unsubscribe();
          resolve();
        } else if (sent < N) send();
      },
    });
    while (sent < Math.min(WINDOW, N)) send();
  });
  const ms = performance.now() - t0;
  const server = (serverCpu() - s0) / N;
  const info = await jsm.streams.info(name);
  await jsm.streams.delete(name);
  const r = { label, rate: Math.round(N / (ms / 1000)), server, bytes: info.state.bytes / N, stored: info.state.messages };
  console.log(`  ${label.padEnd(16)} ${String(r.rate).padStart(8)} msg/s  server ${server.toFixed(2).padStart(5)} µs/msg  ${Math.round(r.bytes)} B/msg stored${r.stored === N ? '' : `  STORED ${r.stored}`}`);
  return r;
}

console.log(`nats-server CPU per stored message — ${N} messages of 256 bytes, window ${WINDOW}, nats-server ${nc.info?.version ?? '?'}`);
const results = {};
for (let round = 1; round <= REPEATS; round++) {
  console.log(`round ${round} of ${REPEATS}`);
  for (const [label, headersFor] of Object.entries(CASES)) (results[label] ??= []).push(await run(label, headersFor));
}
await nc.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const bare = median(results.bare.map((r) => r.server));
console.log(`\nmedians of ${REPEATS} round(s)`);
console.log('| message | msg/s | server CPU µs/msg | more than bare | stored B/msg |\n| --- | ---: | ---: | ---: | ---: |');
for (const [label, runs] of Object.entries(results)) {
  const cpu = median(runs.map((r) => r.server));
  console.log(`| ${label} | ${median(runs.map((r) => r.rate))} | ${cpu.toFixed(2)} | ${label === 'bare' ? '' : `+${(cpu - bare).toFixed(2)}`} | ${Math.round(runs[0].bytes)} |`);
}
