import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { FetchedRecord, recordOffset } from '../src/kafkajs-fetched-record.js';
import { applyKafkajsRecordBatchDecoder, originalKafkajsRecordBatchDecoder } from '../src/kafkajs-record-batch-decoder.js';
import { originalKafkajsRecordEncoder } from '../src/kafkajs-record-encoder.js';
import { ENVELOPE_HEADERS } from './helpers.js';

type BatchDecode = (decoder: object) => Promise<{ records: Record<string, unknown>[] } & Record<string, unknown>>;
const require = createRequire(import.meta.url);
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => object & { offset: number };
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: (batch: object) => Promise<{ buffer: Buffer }> };
const { Types: Compression } = require('kafkajs/src/protocol/message/compression/index.js') as { Types: { None: number; GZIP: number } };
const encodeRecord = originalKafkajsRecordEncoder() as unknown as (record: object) => unknown;

const inputs = [
  { key: 'order-1', value: Buffer.from('{"a":1}'), headers: ENVELOPE_HEADERS },
  { offsetDelta: 1, timestampDelta: 5, key: null, value: null },
  { offsetDelta: 2, timestampDelta: 9, key: 'k', value: Buffer.alloc(3_000, 7), headers: { ...ENVELOPE_HEADERS, ce_id: 'another' } },
];

async function batchBytes(compression: number): Promise<Buffer> {
  const encoded = await RecordBatch({ compression, firstOffset: 1_000, firstTimestamp: 1_764_644_645_678, maxTimestamp: 1_764_644_645_690, lastOffsetDelta: 2, records: inputs.map(encodeRecord) });
  return encoded.buffer;
}

/** The fields kafkajs's readers read, from a record as kafkajs or busline decoded it. */
function fields(record: Record<string, unknown>) {
  return { offset: record.offset, timestamp: record.timestamp, key: record.key, value: record.value, headers: record.headers, isControlRecord: record.isControlRecord };
}

describe('kafkajs record batch decoder (records decoded in the batch\'s own bytes)', () => {
  it('is in place once the adapter loaded', async () => {
    await import('../src/index.js');
    expect(applyKafkajsRecordBatchDecoder()).toBe(true);
    expect(require('kafkajs/src/protocol/recordBatch/v0/decoder.js')).not.toBe(originalKafkajsRecordBatchDecoder());
  });

  const patched = () => require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as BatchDecode;
  const original = () => originalKafkajsRecordBatchDecoder() as BatchDecode;

  it.each([
    ['uncompressed', Compression.None],
    ['gzip', Compression.GZIP],
  ])('%s: the same batch as kafkajs 2.2.4 decodes, and the decoder after it', async (_, compression) => {
    const bytes = Buffer.concat([await batchBytes(compression), Buffer.from([9, 9, 9])]);
    const ours = new Decoder(bytes);
    const theirs = new Decoder(bytes);
    const a = await patched()(ours);
    const b = await original()(theirs);
    expect(ours.offset).toBe(theirs.offset);
    const { records: ourRecords, ...ourContext } = a;
    const { records: theirRecords, ...theirContext } = b;
    expect(ourContext).toEqual(theirContext);
    expect(ourRecords.map(fields)).toEqual(theirRecords.map(fields));
    expect(ourRecords.every((r) => r instanceof FetchedRecord)).toBe(true);
    // In place: every record lies in the one Buffer of its batch (kafkajs gives each a Buffer of its own).
    expect(new Set(ourRecords.map((r) => (r as unknown as { bytes: Buffer }).bytes)).size).toBe(1);
    expect(ourRecords.map((r) => recordOffset(r as never))).toEqual([1_000, 1_001, 1_002]);
  });

  it('a batch cut short by the fetch size is a partial batch, as in kafkajs (the fetch decoder stops there)', async () => {
    const bytes = await batchBytes(Compression.None);
    const cut = bytes.subarray(0, bytes.length - 10);
    await expect(patched()(new Decoder(cut))).rejects.toMatchObject({ name: 'KafkaJSPartialMessageError' });
    await expect(original()(new Decoder(cut))).rejects.toMatchObject({ name: 'KafkaJSPartialMessageError' });
  });

  it('a record whose fields run past its length is refused, not read into the next one', async () => {
    const bytes = Buffer.from(await batchBytes(Compression.None));
    // The first record's length varint sits right after the 61-byte batch header: shrink it by 4 bytes (zigzag: 8).
    expect(bytes[61]! & 0x80).toBe(0x80);
    expect(bytes[61]! & 0x7f).toBeGreaterThanOrEqual(8);
    bytes[61] = bytes[61]! - 8;
    await expect(patched()(new Decoder(bytes))).rejects.toThrow(/malformed Kafka record: its length says/);
  });
});
