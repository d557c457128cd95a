#!/usr/bin/env node
/**
 * node packages/adapter-kafka/bench/content-mode-encode.mjs — CPU cost per
 * message of each CloudEvents content mode on the Kafka path, without a
 * broker: one process, a few seconds.
 *
 * For each mode (binary: ce_ headers + payload value; structured: the event as
 * JSON value + one content-type header) and each payload (256 random bytes, as
 * kafka.bench.mjs publishes, and a small JSON object):
 *   - core encode: `encodeNewEnvelope` (the `bus.publish` path) → WireMessage
 *   - kafkajs record encode: kafkajs's own v0 record encoder (what its producer
 *     runs per record inside a RecordBatch) on the key, value and headers the
 *     Kafka driver hands it
 *   - kafkajs record decode + core decode: the consumer side, kafkajs's v0
 *     record decoder then `decodeEnvelope`
 * Each case runs BENCH_MESSAGES (20,000) messages BENCH_REPEATS (5) times; the
 * best run is printed in µs per message, with the record's size in bytes.
 * The record encoder and decoder are kafkajs internals (src/protocol), loaded
 * by path: kafkajs 2.2.4 does not export them.
 */
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { decodeEnvelope, encodeNewEnvelope, KAFKA_BINDING } from '@busline/core';

const require = createRequire(import.meta.url);
const encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0');
const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder');
const Decoder = require('kafkajs/src/protocol/decoder');

const env = (name, fallback) => (process.env[name] ? Number(process.env[name]) : fallback);
const N = env('BENCH_MESSAGES', 20_000);
const REPEATS = env('BENCH_REPEATS', 5);
const KEYS = 1_000;
const MODES = ['binary', 'structured'];
const PAYLOADS = {
  '256 B bytes': () => new Uint8Array(randomBytes(256)),
  'JSON object': (i) => ({ orderId: `order-${i}`, total: 1234.5, currency: 'EUR', lines: [{ sku: 'A-1', qty: 2 }, { sku: 'B-7', qty: 1 }] }),
};
const defaults = { type: 'orders.placed', source: 'bench' };
let sink = 0;

/** Best (lowest) µs per message of `run(i)` over N messages, REPEATS times after one warm-up pass: the machine is shared, and load from elsewhere only ever adds time. */
function time(run) {
  for (let i = 0; i < N; i++) run(i);
  const samples = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) run(i);
    samples.push(Number(process.hrtime.bigint() - t0) / 1000 / N);
  }
  return Math.min(...samples);
}

/** The record kafkajs gets from the Kafka driver (publish-batcher): key, value as a Buffer, headers as written. */
const kafkaRecord = (m) => ({ key: m.key ?? null, value: Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength), headers: m.headers });

const rows = [];
for (const [label, payloadOf] of Object.entries(PAYLOADS)) {
  const payloads = Array.from({ length: KEYS }, (_, i) => payloadOf(i));
  const options = Array.from({ length: KEYS }, (_, i) => ({ aggregateId: `agg-${i}` }));
  for (const mode of MODES) {
    const encode = (i) => encodeNewEnvelope(payloads[i % KEYS], options[i % KEYS], defaults, KAFKA_BINDING, mode);
    const coreEncode = time((i) => (sink += encode(i).body.length));
    const records = Array.from({ length: KEYS }, (_, i) => kafkaRecord(encode(i)));
    const kafkaEncode = time((i) => (sink += encodeRecord(records[i % KEYS]).size()));
    const encoded = records.map((r) => encodeRecord(r).buffer);
    const decodeBoth = time((i) => {
      const decoder = new Decoder(encoded[i % KEYS]);
      decoder.readVarInt(); // the record's length, read by the batch decoder before it calls the record decoder
      const record = decodeRecord(decoder, { firstOffset: '0', firstTimestamp: '0', magicByte: 2 });
      const headers = {};
      for (const name in record.headers) headers[name] = record.headers[name].toString();
      const result = decodeEnvelope({ key: record.key?.toString(), headers, body: record.value }, KAFKA_BINDING);
      if (!result.ok) throw result.error;
      sink += result.envelope.id.length;
    });
    const headerCount = Object.keys(records[0].headers).length;
    rows.push({ label, mode, coreEncode, kafkaEncode, decodeBoth, headers: headerCount, bytes: encoded[0].length });
  }
}

const f = (n) => n.toFixed(2).padStart(8);
console.log(`\ncontent mode encode/decode cost — ${N.toLocaleString('en-US')} messages, best of ${REPEATS} runs, node ${process.version}, µs per message`);
console.log(`${'payload'.padEnd(13)}${'mode'.padEnd(12)}${'headers'.padStart(8)}${'record B'.padStart(10)}${'core enc'.padStart(10)}${'kafkajs enc'.padStart(13)}${'enc total'.padStart(11)}${'kafkajs+core dec'.padStart(18)}`);
for (const r of rows) {
  console.log(
    `${r.label.padEnd(13)}${r.mode.padEnd(12)}${String(r.headers).padStart(8)}${String(r.bytes).padStart(10)}${f(r.coreEncode).padStart(10)}${f(r.kafkaEncode).padStart(13)}${f(r.coreEncode + r.kafkaEncode).padStart(11)}${f(r.decodeBoth).padStart(18)}`,
  );
}
for (const label of Object.keys(PAYLOADS)) {
  const [b, s] = MODES.map((mode) => rows.find((r) => r.label === label && r.mode === mode));
  console.log(
    `${label}: structured ÷ binary — encode total ${((s.coreEncode + s.kafkaEncode) / (b.coreEncode + b.kafkaEncode)).toFixed(2)}x, ` +
      `decode ${(s.decodeBoth / b.decodeBoth).toFixed(2)}x, record size ${(s.bytes / b.bytes).toFixed(2)}x`,
  );
}
if (sink === 0) console.log('');
