import { describe, expect, it } from 'vitest';
import { applyKafkajsRecordEncoder, originalKafkajsRecordEncoder } from '../src/kafkajs-record-encoder.js';
import { createRequire } from 'node:module';

type Encode = (record: object) => { buffer: Buffer };
const require = createRequire(import.meta.url);

const long = 'x'.repeat(700);
const records: object[] = [
  { key: 'order-1', value: Buffer.from('{"a":1}'), headers: {} },
  { key: null, value: null },
  { offsetDelta: 3, timestampDelta: 1234, key: Buffer.from('k'), value: Buffer.from(long), headers: { 'content-type': 'application/json' } },
  {
    offsetDelta: 999,
    timestampDelta: 2 ** 40,
    key: 'acct-7',
    value: Buffer.from('{"total":42}'),
    headers: {
      ce_specversion: '1.0',
      ce_id: '01934f1e-7c4a-7d2b-9f3e-2b8c1d4e5f60',
      ce_type: 'order.placed',
      ce_source: 'billing',
      ce_time: '2026-12-02T03:04:05.678Z',
      ce_eventversion: '1',
      'content-type': 'application/json',
      ce_subject: 'acct-7',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
  },
  { key: 'ünïcødé', value: Buffer.from('v'), headers: { 'naïve-ключ': 'значение ✓', empty: '', many: ['a', Buffer.from([0, 255]), 'c'] } },
  { key: 'big', value: Buffer.alloc(70_000, 1), headers: { h: long } },
];

describe('kafkajs record encoder (headers written into the record, one buffer)', () => {
  it('is in place once the adapter loaded', async () => {
    await import('../src/index.js');
    expect(applyKafkajsRecordEncoder()).toBe(true);
    const current = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as Encode;
    expect(current).not.toBe(originalKafkajsRecordEncoder());
  });

  it.each(records.map((r, i) => [i, r] as const))('record %i: the same bytes as kafkajs 2.2.4 writes', (_, record) => {
    const patched = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as Encode;
    const original = originalKafkajsRecordEncoder() as unknown as Encode;
    expect(patched(record).buffer.equals(original(record).buffer)).toBe(true);
  });
});
