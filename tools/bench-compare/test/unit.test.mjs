// Unit tests of the pieces that decide a verdict or draw a chart (no brokers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracker, encodePayload, decodePayload, summarizeHistogram, newHistogram, WARMUP_INDEX } from '../src/workload.mjs';
import { barChart, percentileChart, esc, compact } from '../src/svg.mjs';
import { parseOptions } from '../src/options.mjs';
import { verdict, textTable, headlineRows } from '../src/report.mjs';
import { handleGrowth } from '../src/measure.mjs';

const msg = (key, seq, index) => encodePayload(64, key, seq, index, performance.timeOrigin + performance.now());

test('payload round trip', () => {
  const b = encodePayload(256, 7, 42, 1234, 1700000000000.5);
  assert.equal(b.length, 256);
  assert.deepEqual(decodePayload(b), { key: 7, seq: 42, index: 1234, stamp: 1700000000000.5 });
  assert.equal(encodePayload(10, 0, 0, 0, 0).length, 24, 'never shorter than the header');
});

test('tracker: in-order delivery has no violations, duplicates are counted once and ignored', () => {
  const t = new Tracker({ keys: 2, expected: 8 });
  t.receive(msg(0, 0, 0));
  t.receive(msg(1, 0, 1));
  t.receive(msg(0, 1, 2));
  t.receive(msg(0, 1, 2)); // redelivery
  t.receive(msg(0, 2, 4));
  assert.equal(t.unique, 4);
  assert.equal(t.duplicates, 1);
  assert.equal(t.violations, 0);
  assert.equal(t.histogram.totalCount, 4);
});

test('tracker: a message arriving after a later one of its key is a violation; other keys are independent', () => {
  const t = new Tracker({ keys: 2, expected: 8 });
  t.receive(msg(0, 1, 2));
  t.receive(msg(1, 0, 1));
  t.receive(msg(0, 0, 0)); // late
  assert.equal(t.violations, 1);
  assert.match(t.examples[0], /key 0: seq 0 after 1/);
});

test('tracker: warm-up messages are not counted, the seen-set grows past its first size', () => {
  const t = new Tracker({ keys: 1, expected: 8 });
  t.receive(encodePayload(64, 0, 0, WARMUP_INDEX, 0));
  assert.equal(t.unique, 0);
  assert.equal(t.warmups, 1);
  for (let i = 0; i < 50_000; i++) t.receive(msg(0, i, i));
  assert.equal(t.unique, 50_000);
  assert.equal(t.violations, 0);
});

test('histogram summary: percentiles in ms, curve ends with max', () => {
  const h = newHistogram();
  for (let i = 1; i <= 1000; i++) h.recordValue(i * 1000); // 1..1000 ms
  const s = summarizeHistogram(h);
  assert.ok(Math.abs(s.p50 - 500) < 2, `p50 ${s.p50}`);
  assert.ok(Math.abs(s.p99 - 990) < 5, `p99 ${s.p99}`);
  assert.equal(s.curve.at(-1)[0], 100);
  assert.ok(Math.abs(s.curve.at(-1)[1] - 1000) < 2);
  assert.ok(!s.curve.some(([p]) => p === 99.99), '1,000 samples cannot resolve p99.99');
  assert.equal(summarizeHistogram(newHistogram()).count, 0);
});

test('options: defaults, quick, baselines follow the adapters', () => {
  const d = parseOptions([]);
  assert.deepEqual(d.targets, ['memory', 'nats', 'nats-raw', 'kafka', 'kafka-raw']);
  assert.equal(d.duration, 60);
  assert.deepEqual(d.levels, [500, 2000, 5000, 10000]);
  assert.equal(d.size, 256);
  const q = parseOptions(['--quick', '--adapters', 'memory,kafka', '--no-baselines']);
  assert.deepEqual(q.targets, ['memory', 'kafka']);
  assert.equal(q.duration, 5);
  assert.equal(parseOptions(['--count', '1000000']).duration, undefined);
  assert.throws(() => parseOptions(['--adapters', 'redis']), /unknown adapter/);
  assert.throws(() => parseOptions(['--size', '8']), /--size/);
});

test('verdict: violations, loss and errors fail; duplicates and leaks are notes', () => {
  const base = { label: 'x', scenario: 'sustained', params: { durationS: 1 }, publish: { failed: 0 }, correctness: { orderViolations: 0, lost: 0, duplicates: 0, examples: [] }, resources: { leakedHandles: {} } };
  assert.equal(verdict([base]).ok, true);
  assert.equal(verdict([{ ...base, correctness: { ...base.correctness, orderViolations: 1 } }]).ok, false);
  assert.equal(verdict([{ ...base, correctness: { ...base.correctness, lost: 3 } }]).ok, false);
  assert.equal(verdict([{ ...base, error: 'boom' }]).ok, false);
  const v = verdict([{ ...base, correctness: { ...base.correctness, duplicates: 2 }, resources: { leakedHandles: { Timeout: 1 } } }]);
  assert.equal(v.ok, true);
  assert.equal(v.warnings.length, 2);
});

test('handle growth lists only types that grew', () => {
  assert.deepEqual(handleGrowth({ TCPWrap: 2, Timeout: 1 }, { TCPWrap: 1, Timeout: 3, FSReqCallback: 1 }), { Timeout: 2, FSReqCallback: 1 });
});

test('svg: bar and percentile charts are well-formed and escape text', () => {
  const bars = barChart({ title: 'A & B <test>', unit: 'msg/s', groups: [{ label: 'g', bars: [{ label: 'x', value: 1234, color: '#000' }, { label: 'y', value: null, color: '#111' }] }], legend: [{ label: 'x', color: '#000' }] });
  assert.match(bars, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(bars, /A &amp; B &lt;test&gt;/);
  assert.match(bars, /1,234/);
  assert.match(bars, /n\/a/);
  assert.ok(bars.trim().endsWith('</svg>'));
  const curve = percentileChart({ title: 't', series: [{ label: 's', color: '#000', points: [[0, 0.1], [50, 1], [99, 5], [99.9, 9], [100, 12]] }] });
  assert.match(curve, /<path d="M/);
  assert.match(curve, />max</);
  assert.equal((curve.match(/<svg/g) ?? []).length, 1);
  assert.equal(esc('"'), '&quot;');
  assert.equal(compact(123456), '123k');
  assert.equal(compact(1500000), '1.50M');
});

test('text table aligns columns', () => {
  const t = textTable(['a', 'b', 'n'], [['x', 'yy', '1,000'], ['xx', 'y', '5']]).split('\n');
  assert.equal(new Set(t.map((l) => l.length)).size, 1);
});

test('headline: one row per target, correctness summed over runs', () => {
  const r = (target, scenario, extra = {}) => ({ target, label: target, kind: 'busline', broker: target, scenario, name: scenario, params: { mode: 'closed', fraction: 0.5, rate: 10 }, publish: { msgPerSec: 10, mbPerSec: 1 }, e2e: { msgPerSec: 9 }, latency: { p50: 1, p99: 2, p999: 3 }, correctness: { orderViolations: 0, lost: 0, duplicates: 1 }, resources: { peakRssMB: 10 }, ...extra });
  const rows = headlineRows([r('memory', 'sustained'), r('memory', 'latency', { params: { mode: 'open', fraction: 0.5, rate: 5 } }), r('memory', 'levels')]);
  assert.equal(rows.length, 1);
  assert.equal(rows[0][5], '5/s (50%)');
  assert.equal(rows[0][11], '3');
});
