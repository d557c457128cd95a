import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { applyForeignConsumerCount, foreignConsumersRunning } from '../src/kafkajs-foreign-consumers.js';
import { recordKeyText, recordOffset, recordSize, recordTimestamp, recordValue } from '../src/kafkajs-fetched-record.js';
import { applyKafkajsRecordDecoder, headerTextOf, originalKafkajsRecordDecoder } from '../src/kafkajs-record-decoder.js';
import { originalKafkajsRecordEncoder } from '../src/kafkajs-record-encoder.js';
import { ENVELOPE_HEADERS } from './helpers.js';

type Decode = (decoder: object, batchContext?: object) => Record<string, unknown>;
const require = createRequire(import.meta.url);
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => object & { readVarIntBytes(): Buffer };
const encode = originalKafkajsRecordEncoder() as unknown as (record: object) => { buffer: Buffer };

const long = 'x'.repeat(700);
const eight = ENVELOPE_HEADERS;
const records: object[] = [
  { key: 'order-1', value: Buffer.from('{"a":1}'), headers: {} },
  { key: null, value: null },
  { offsetDelta: 3, timestampDelta: 1234, key: Buffer.from('k'), value: Buffer.from(long), headers: { 'content-type': 'application/json' } },
  { offsetDelta: 999, timestampDelta: 2 ** 40, key: 'acct-7', value: Buffer.from('{"total":42}'), headers: eight },
  // The same names with other values: the name cache must not hand back the previous record's values.
  { offsetDelta: 1000, key: 'acct-8', value: Buffer.from('{}'), headers: { ...eight, ce_id: 'other', ce_type: 'order.paid' } },
  { offsetDelta: 5, timestampDelta: -17, key: 'neg', value: Buffer.from('v'), headers: { ce_specversion: '1.0' } },
  // Beyond 7 varint bytes: kafkajs's Long path.
  { offsetDelta: 6, timestampDelta: 2 ** 52, key: 'far', value: Buffer.from('v') },
  { key: 'ünïcødé', value: Buffer.from('v'), headers: { 'naïve-ключ': 'значение ✓', empty: '', many: ['a', Buffer.from([0, 255]), 'c'] } },
  { key: 'big', value: Buffer.alloc(70_000, 1), headers: { h: long } },
  // Values spelled by the key's bytes are the key's text; others of its length are not (é in UTF-8, then in Latin-1).
  { key: Buffer.from('é'), value: Buffer.from('v'), headers: { same: Buffer.from('é'), latin: Buffer.from([0xe9, 0x41]), other: 'ab' } },
  { key: '', value: Buffer.from('v'), headers: { empty: '', one: 'x' } },
  { key: null, value: Buffer.from('v'), headers: { ce_subject: 'acct-7' } },
];
const contexts = [
  { firstOffset: '41', firstTimestamp: '1764644645678', magicByte: 2, timestampType: 0, maxTimestamp: '1764644650000' },
  { firstOffset: '9007199254740990', firstTimestamp: '-1', magicByte: 2, isControlBatch: true, timestampType: 0 },
  { firstOffset: '7', firstTimestamp: '1764644645678', magicByte: 2, timestampType: 1, maxTimestamp: '1764644650000' },
];

/** One record decoded from its bytes by `decode`, as the batch decoder does it. */
function decodeWith(decode: Decode, record: object, context: object): Record<string, unknown> {
  const bytes = new Decoder(encode(record).buffer).readVarIntBytes();
  const decoder = new Decoder(bytes);
  const result = decode(decoder, context);
  expect((decoder as unknown as { offset: number }).offset, 'every byte of the record read').toBe(bytes.length);
  return result;
}

describe('kafkajs record decoder (headers gathered once, offsets in doubles)', () => {
  it('is in place once the adapter loaded', async () => {
    await import('../src/index.js');
    expect(applyKafkajsRecordDecoder()).toBe(true);
    expect(require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js')).not.toBe(originalKafkajsRecordDecoder());
  });

  const cases = contexts.flatMap((context, c) => records.map((record, r) => [`context ${c}, record ${r}`, record, context] as const));
  const patched = () => require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as Decode;
  const original = () => originalKafkajsRecordDecoder() as Decode;

  it.each(cases)('%s, only busline consuming: the same record as kafkajs 2.2.4 decodes, and its headers as text', (_, record, context) => {
    expect(applyForeignConsumerCount()).toBe(true);
    expect(foreignConsumersRunning()).toBe(false);
    const ours = decodeWith(patched(), record, context);
    const theirs = decodeWith(original(), record, context);
    // Every field kafkajs gives, read as kafkajs's readers read them (key, value, offset, timestamp and
    // headers are computed from the record's bytes when read).
    expect(Object.fromEntries(Object.keys(theirs).map((k) => [k, ours[k]]))).toEqual(theirs);
    // And what the adapter reads of it, without kafkajs's fields.
    const kafkajsRecord = theirs as { offset: string; timestamp: string; key: Buffer | null; value: Buffer | null };
    expect(recordOffset(ours as never)).toBe(Number(kafkajsRecord.offset));
    expect(recordKeyText(ours as never)).toBe(kafkajsRecord.key?.toString());
    expect(Buffer.from(recordValue(ours as never))).toEqual(kafkajsRecord.value ?? Buffer.alloc(0));
    expect(recordSize(ours as never)).toBe((kafkajsRecord.value?.length ?? 0) + (kafkajsRecord.key?.length ?? 0) + 128);
    expect(recordTimestamp(ours as never)).toBe(Number(kafkajsRecord.timestamp) >= 0 ? Number(kafkajsRecord.timestamp) : undefined);
    // As text: the last value of a repeated name, nothing for a null value.
    const text: Record<string, string> = {};
    for (const [name, v] of Object.entries(theirs.headers as Record<string, Buffer | null | (Buffer | null)[]>)) {
      const last = Array.isArray(v) ? v[v.length - 1] : v;
      if (last !== null && last !== undefined) text[name] = last.toString();
    }
    expect(headerTextOf(ours)).toEqual(text);
  });

  describe('while a kafkajs consumer not busline\'s exists', () => {
    let foreign: kafkajs.Consumer;
    beforeAll(() => {
      applyForeignConsumerCount();
      foreign = new kafkajs.Kafka({ brokers: ['127.0.0.1:1'], logLevel: kafkajs.logLevel.NOTHING }).consumer({ groupId: 'foreign' });
    });
    afterAll(async () => {
      await foreign.disconnect();
    });

    it.each(cases)('%s: records are plain objects with Buffer headers, equal to kafkajs 2.2.4\'s', (_, record, context) => {
      expect(foreignConsumersRunning()).toBe(true);
      const ours = decodeWith(patched(), record, context);
      expect(headerTextOf(ours)).toBeUndefined();
      const theirs = decodeWith(original(), record, context);
      expect(ours).toStrictEqual(theirs);
      // The adapter's accessors read kafkajs's own records alike.
      expect(recordOffset(ours as never)).toBe(Number(theirs.offset));
      expect(recordSize(ours as never)).toBe(((theirs.value as Buffer | null)?.length ?? 0) + ((theirs.key as Buffer | null)?.length ?? 0) + 128);
    });
  });

  it('once the foreign consumer disconnected, busline\'s text headers are back', () => {
    expect(foreignConsumersRunning()).toBe(false);
    expect(headerTextOf(decodeWith(patched(), records[3]!, contexts[0]!))).toMatchObject({ ce_id: expect.any(String) });
  });

  it('offsets and timestamps past 2^53 are exact (kafkajs Long arithmetic)', () => {
    const decoded = decodeWith(patched(), { offsetDelta: 9, timestampDelta: 3, key: 'k', value: Buffer.from('v') }, { firstOffset: '9007199254740993', firstTimestamp: '9007199254740993', timestampType: 0 });
    expect(decoded.offset).toBe('9007199254741002');
    expect(decoded.timestamp).toBe('9007199254740996');
    // The adapter's offsets are numbers: past 2^53 the nearest one (as Number(offset) always gave).
    expect(recordOffset(decoded as never)).toBe(Number('9007199254741002'));
  });
});
