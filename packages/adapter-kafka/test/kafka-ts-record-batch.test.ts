import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { applyKafkaTsRecordBatch, maxBatchSize, originalKafkaTsCreateBatch, type KafkaTsPartitionBatch, type KafkaTsRecord } from '../src/kafka-ts-record-batch.js';

const require = createRequire(import.meta.url);
type CreateBatch = (p: KafkaTsPartitionBatch) => { buffer: Buffer; offset: number; getBufferLength(): number };
const current = () => (require('kafka-ts/dist/api/produce/common.js') as { createBatch: CreateBatch }).createBatch;
const bytes = (e: ReturnType<CreateBatch>) => e.buffer.subarray(0, e.getBufferLength());

const envelope = {
  ce_specversion: '1.0',
  ce_id: '01934f1e-7c4a-7d2b-9f3e-2b8c1d4e5f60',
  ce_type: 'order.placed',
  ce_source: 'billing',
  ce_time: '2026-12-02T03:04:05.678Z',
  'content-type': 'application/json',
  ce_subject: 'acct-7',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
};
const headers = (h: Record<string, string | Buffer | null>) => Object.entries(h).map(([key, value]) => ({ key, value }));
const record = (offsetDelta: number, r: Partial<KafkaTsRecord>): KafkaTsRecord => ({ attributes: 0, timestampDelta: 0n, offsetDelta, key: 'k', value: Buffer.from('v'), headers: [], ...r });
const batch = (records: KafkaTsRecord[], p: Partial<KafkaTsPartitionBatch> = {}): KafkaTsPartitionBatch => ({
  baseOffset: 0n,
  partitionLeaderEpoch: -1,
  attributes: 0,
  lastOffsetDelta: records.length - 1,
  baseTimestamp: 1_764_640_000_000n,
  maxTimestamp: 1_764_640_000_123n,
  producerId: 4_242n,
  producerEpoch: 3,
  baseSequence: 2_147_483_000,
  records,
  ...p,
});

const long = 'x'.repeat(700);
const cases: [string, KafkaTsPartitionBatch][] = [
  ['one plain record', batch([record(0, {})])],
  ['null key and value, no headers', batch([record(0, { key: null, value: null })])],
  ['the envelope headers, many records', batch(Array.from({ length: 300 }, (_, i) => record(i, { key: `acct-${i % 7}`, value: Buffer.alloc(256, i), headers: headers(envelope) })))],
  ['a Uint8Array value', batch([record(0, { value: new Uint8Array([1, 2, 3]) })])],
  ['text keys and values, non-ASCII', batch([record(0, { key: 'ünïcødé', value: 'значение ✓', headers: headers({ 'naïve-ключ': 'значение ✓', empty: '', nul: null, bin: Buffer.from([0, 255]) }) })])],
  ['63- and 64-byte text (one- and two-byte lengths)', batch([record(0, { key: 'a'.repeat(63), value: 'b'.repeat(64), headers: headers({ ['c'.repeat(64)]: 'é'.repeat(21), d: 'é'.repeat(32) }) })])],
  ['a record near 8 KiB (length width boundary) and one of 70 kB', batch([record(0, { value: Buffer.alloc(8_170, 2) }), record(1, { value: Buffer.alloc(70_000, 1), headers: headers({ h: long }) })])],
  ['timestamp deltas past 2^30 and negative', batch([record(0, { timestampDelta: 2n ** 40n }), record(1, { timestampDelta: -5n }), record(2, { timestampDelta: 2n ** 30n })])],
  ['no records', batch([], { lastOffsetDelta: -1 })],
];

describe('kafka-ts record batch encoder (one buffer, no per-record Buffers)', () => {
  it('is in place once the adapter loaded', async () => {
    await import('../src/index.js');
    expect(applyKafkaTsRecordBatch()).toBe(true);
    expect(current()).not.toBe(originalKafkaTsCreateBatch());
  });

  it.each(cases)('%s: the same bytes as kafka-ts 1.5 writes', (_, partition) => {
    const ours = bytes(current()(partition));
    expect(ours.equals(bytes(originalKafkaTsCreateBatch()!(partition)))).toBe(true);
    expect(ours.length).toBeLessThanOrEqual(maxBatchSize(partition));
  });
});
