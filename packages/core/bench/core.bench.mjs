// Core micro-benchmarks: keyed ordering pool dispatch, ack watermark, envelope codec.
//
//   pnpm bench:core          (= pnpm build && node packages/core/bench/core.bench.mjs)
//
// Synchronous cases use the `benchmark` package (statistically sampled,
// relative margin of error printed). The asynchronous pool case does not fit
// `benchmark`'s deferred mode well (one deferred per op measures the promise
// plumbing, not the pool), so it is hand-timed: process.hrtime.bigint around
// 500,000 items through the pool, repeated 5 times, the median reported, next
// to a baseline that runs the same async function without the pool.
//
// Every figure printed comes from this script on the machine it runs on.
import os from 'node:os';
import Benchmark from 'benchmark';
import { AckWatermark, KeyedOrderingPool, buildEnvelope, decodeEnvelope, encodeEnvelope, encodeNewEnvelope } from '../dist/index.js';

const KEYS = 1000;
const CONCURRENCY = 64;
const MAX_PENDING = 1024;
const ASYNC_ITEMS = 500_000;
const ASYNC_REPEATS = 5;

const keys = Array.from({ length: KEYS }, (_, i) => `order-${i}`);
let sink = 0;

// ---------------------------------------------------------------- sync cases
const results = [];

function syncRun(n) {
  sink += n;
}

let directI = 0;
const syncPool = new KeyedOrderingPool({ concurrency: CONCURRENCY, maxPending: MAX_PENDING });
const syncLane = syncPool.lane(syncRun);
let poolI = 0;
let unkeyedI = 0;

// Watermark: each op tracks the next position and completes one tracked 64
// positions earlier, in an order shuffled within blocks of 64 (out of order,
// as handlers finish), so about 64 positions are outstanding at any time.
const BLOCK = 64;
const shuffle = Array.from({ length: BLOCK }, (_, i) => i);
for (let i = BLOCK - 1; i > 0; i--) {
  const j = (i * 7919 + 13) % (i + 1);
  [shuffle[i], shuffle[j]] = [shuffle[j], shuffle[i]];
}
function watermarkCase(step) {
  const w = new AckWatermark();
  let i = 0;
  return () => {
    w.track(i * step);
    const j = i - BLOCK;
    if (j >= 0) w.complete((j - (j % BLOCK) + shuffle[j % BLOCK]) * step);
    i++;
  };
}
const watermarkContiguous = watermarkCase(1);
const watermarkGapped = watermarkCase(3);

// Envelope: a ~256-byte JSON payload.
const payload = {
  orderId: 'ord-2f1c9a7e-5b3d-4e8a-9c61-0d7f2b4a8e13',
  customerId: 'cus-7731',
  currency: 'EUR',
  total: 129.95,
  lines: [
    { sku: 'SKU-000123', qty: 2, price: 19.99 },
    { sku: 'SKU-004567', qty: 1, price: 89.97 },
  ],
  note: 'leave at the door',
};
const payloadBytes = Buffer.byteLength(JSON.stringify(payload));
const wire = encodeEnvelope(buildEnvelope(payload, { aggregateId: 'ord-1' }, { type: 't', source: 's' }));
let envI = 0;

const suite = new Benchmark.Suite('core');
suite
  .add('baseline: direct call run(item)', () => {
    syncRun(directI++);
  })
  .add(`pool submit, sync run, ${KEYS} keys`, () => {
    syncLane.submit(keys[poolI % KEYS], poolI++);
  })
  .add('pool submit, sync run, unkeyed', () => {
    syncLane.submit(undefined, unkeyedI++);
  })
  .add('watermark track+complete (contiguous)', watermarkContiguous)
  .add('watermark track+complete (gaps)', watermarkGapped)
  .add(`envelope build+encode (${payloadBytes} B JSON)`, () => {
    const m = encodeEnvelope(buildEnvelope(payload, { aggregateId: keys[envI++ % KEYS] }, { type: 't', source: 's' }));
    sink += m.body.length;
  })
  .add(`envelope publish path, encodeNewEnvelope (${payloadBytes} B JSON)`, () => {
    const m = encodeNewEnvelope(payload, { aggregateId: keys[envI++ % KEYS] }, { type: 't', source: 's' });
    sink += m.body.length;
  })
  .add(`envelope decode (${payloadBytes} B JSON)`, () => {
    const r = decodeEnvelope(wire);
    if (!r.ok) throw r.error;
    sink += r.envelope.version;
  })
  .on('cycle', (event) => {
    const b = event.target;
    if (b.error) throw b.error;
    results.push({ name: b.name, hz: b.hz, rme: b.stats.rme, samples: b.stats.sample.length });
    process.stderr.write(`  measured ${b.name}\n`);
  });

// --------------------------------------------------------------- async cases
async function asyncRun(n) {
  sink += n;
}

/** One timed pass: ASYNC_ITEMS items over KEYS keys through a fresh pool. */
async function poolAsyncPass() {
  const pool = new KeyedOrderingPool({ concurrency: CONCURRENCY, maxPending: MAX_PENDING });
  const lane = pool.lane(asyncRun);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ASYNC_ITEMS; i++) {
    const wait = lane.submit(keys[i % KEYS], i);
    if (wait) await wait;
  }
  const drained = await pool.drain();
  const ns = Number(process.hrtime.bigint() - start);
  if (!drained) throw new Error('pool did not drain');
  return ns;
}

/**
 * Baseline: the same async function called directly, CONCURRENCY at a time in
 * waves (no keys, no queues): what the work costs without the pool.
 */
async function directAsyncPass() {
  const start = process.hrtime.bigint();
  const wave = new Array(CONCURRENCY);
  for (let i = 0; i < ASYNC_ITEMS; ) {
    let n = 0;
    for (; n < CONCURRENCY && i < ASYNC_ITEMS; n++, i++) wave[n] = asyncRun(i);
    for (let k = 0; k < n; k++) await wave[k];
  }
  return Number(process.hrtime.bigint() - start);
}

async function median(pass) {
  await pass(); // warm-up
  const runs = [];
  for (let r = 0; r < ASYNC_REPEATS; r++) runs.push(await pass());
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)];
}

// -------------------------------------------------------------------- report
function fmt(n, digits = 0) {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function main() {
  process.stderr.write(`running (node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'})\n`);
  await new Promise((resolve, reject) => {
    suite.on('complete', resolve).on('error', (e) => reject(e.target.error));
    suite.run({ async: false });
  });

  const directAsyncNs = await median(directAsyncPass);
  const poolAsyncNs = await median(poolAsyncPass);
  const asyncRows = [
    { name: `baseline: async run, ${CONCURRENCY} at a time`, ns: directAsyncNs },
    { name: `pool submit, async run, ${KEYS} keys, c=${CONCURRENCY}`, ns: poolAsyncNs },
  ].map((r) => ({ name: r.name, hz: (ASYNC_ITEMS * 1e9) / r.ns, rme: undefined, samples: ASYNC_REPEATS }));

  const rows = [...results, ...asyncRows];
  const width = Math.max(...rows.map((r) => r.name.length));
  console.log('');
  console.log(`@busline/core benchmarks — node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cpus`);
  console.log('');
  console.log(`${'case'.padEnd(width)}  ${'ops/s'.padStart(14)}  ${'ns/op'.padStart(9)}  ${'±'.padStart(7)}  samples`);
  console.log(`${'-'.repeat(width)}  ${'-'.repeat(14)}  ${'-'.repeat(9)}  ${'-'.repeat(7)}  -------`);
  for (const r of rows) {
    const rme = r.rme === undefined ? 'median' : `${r.rme.toFixed(2)}%`;
    console.log(`${r.name.padEnd(width)}  ${fmt(r.hz).padStart(14)}  ${fmt(1e9 / r.hz, 1).padStart(9)}  ${rme.padStart(7)}  ${r.samples}`);
  }

  const nsOf = (name) => 1e9 / results.find((r) => r.name.startsWith(name)).hz;
  const syncOverheadUs = (nsOf('pool submit, sync run, 1') - nsOf('baseline: direct call')) / 1000;
  const asyncOverheadUs = (poolAsyncNs - directAsyncNs) / ASYNC_ITEMS / 1000;
  const worst = Math.max(syncOverheadUs, asyncOverheadUs);
  console.log('');
  console.log(`pool overhead per message: ${worst.toFixed(3)} µs (target <= 2 µs)`);
  console.log(`  sync runs:  ${syncOverheadUs.toFixed(3)} µs (pool submit minus direct call)`);
  console.log(`  async runs: ${asyncOverheadUs.toFixed(3)} µs (pool, ${KEYS} keys, concurrency ${CONCURRENCY}, maxPending ${MAX_PENDING}, minus the direct async baseline; median of ${ASYNC_REPEATS} x ${fmt(ASYNC_ITEMS)} items)`);
  if (sink === 42) console.log(''); // keep the work observable
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
