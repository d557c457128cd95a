import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRequire } from 'node:module';
import { applyKafkaTsRecordBatch, maxBatchSize, originalKafkaTs, type KafkaTsMessage, type KafkaTsProduceRequest, type ProducerBufferLike } from '../src/kafka-ts-record-batch.js';
import { ENVELOPE_HEADERS } from './helpers.js';

const require = createRequire(import.meta.url);
type Encoded = { buffer: Buffer; getBufferLength(): number };
const createBatch = () => (require('kafka-ts/dist/api/produce/common.js') as { createBatch: (p: unknown) => Encoded }).createBatch;
const createRequest = () =>
  (require('kafka-ts/dist/producer/producer-buffer.js') as { ProducerBuffer: { prototype: { createRequest: (this: ProducerBufferLike, b: KafkaTsMessage[]) => Promise<KafkaTsProduceRequest> } } })
    .ProducerBuffer.prototype.createRequest;

/** A ProducerBuffer as far as createRequest looks: an initialized producer id with a sequence per partition. */
const buffer: ProducerBufferLike = {
  options: {
    state: { isInitialized: true, initProducerId: async () => undefined, generation: 3, producerId: 4_242n, producerEpoch: 7, getSequence: (_t, p) => 2_147_483_000 + p },
    metadata: { getTopicIdByName: (name) => `id-of-${name}` },
  },
};

/** Every partition's batch bytes, and the request without them, through `request` and the current createBatch. */
async function encode(request: typeof createRequest extends () => infer F ? F : never, messages: KafkaTsMessage[]) {
  const { generation, topicData } = await request.call(buffer, messages.map((m) => ({ ...m })));
  const bytes = topicData.flatMap((t) => t.partitionData.map((p) => [t.name, p.index, Buffer.from(createBatch()(p).buffer.subarray(0, createBatch()(p).getBufferLength()))] as const));
  const bound = topicData.flatMap((t) => t.partitionData.map((p) => maxBatchSize(p)));
  const shape = { generation, topicData: topicData.map((t) => ({ ...t, partitionData: t.partitionData.map(({ records, ...p }) => ({ ...p, records: records.length })) })) };
  return { bytes, bound, shape };
}

const envelope = ENVELOPE_HEADERS;
const m = (topic: string, partition: number, r: Partial<KafkaTsMessage> = {}): KafkaTsMessage => ({ topic, partition, key: 'k', value: Buffer.from('v'), ...r });
const long = 'x'.repeat(700);
const cases: [string, KafkaTsMessage[]][] = [
  ['one plain message', [m('t', 0)]],
  ['null key and value, no headers', [m('t', 0, { key: null, value: null }), m('t', 0, { key: undefined })]],
  ['the envelope headers, 300 messages over 3 partitions', Array.from({ length: 300 }, (_, i) => m('orders', [2, 0, 1][i % 3]!, { key: `acct-${i % 7}`, value: Buffer.alloc(256, i), headers: envelope }))],
  ['two topics, partitions out of order', [m('b', 5), m('a', 1), m('b', 0), m('a', 10), m('a', 2)]],
  ['a Uint8Array value', [m('t', 0, { value: new Uint8Array([1, 2, 3]) })]],
  ['text keys and values, non-ASCII', [m('t', 0, { key: 'ünïcødé', value: 'значение ✓', headers: { 'naïve-ключ': 'значение ✓', empty: '', bin: Buffer.from([0, 255]) } })]],
  ['63- and 64-byte text (one- and two-byte lengths)', [m('t', 0, { key: 'a'.repeat(63), value: 'b'.repeat(64), headers: { ['c'.repeat(64)]: 'é'.repeat(21), d: 'é'.repeat(32) } })]],
  ['a record near 8 KiB (length width boundary) and one of 70 kB', [m('t', 0, { value: Buffer.alloc(8_170, 2) }), m('t', 0, { value: Buffer.alloc(70_000, 1), headers: { h: long } })]],
  ['own timestamps, older and newer, beside default ones', [m('t', 0, { timestamp: 1_700_000_000_000n }), m('t', 0), m('t', 0, { timestamp: 1_900_000_000_000n }), m('t', 1, { timestamp: 5n })]],
];

describe('kafka-ts produce request and record batch (one buffer, no per-record objects)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is in place once the adapter loaded', async () => {
    await import('../src/index.js');
    expect(applyKafkaTsRecordBatch()).toBe(true);
    expect(createBatch()).not.toBe(originalKafkaTs()!.createBatch);
    expect(createRequest()).not.toBe(originalKafkaTs()!.createRequest);
  });

  it.each(cases)('%s: the same request and bytes as kafka-ts 1.5 makes', async (_, messages) => {
    vi.spyOn(Date, 'now').mockReturnValue(1_764_640_000_123);
    const ours = await encode(createRequest(), messages);
    const theirs = await encode(originalKafkaTs()!.createRequest, messages);
    expect(ours.shape).toEqual(theirs.shape);
    expect(ours.bytes.map(([t, p]) => `${t}/${p}`)).toEqual(theirs.bytes.map(([t, p]) => `${t}/${p}`));
    for (let i = 0; i < ours.bytes.length; i++) {
      expect(ours.bytes[i]![2].equals(theirs.bytes[i]![2]), `partition ${ours.bytes[i]![0]}/${ours.bytes[i]![1]}`).toBe(true);
      expect(ours.bytes[i]![2].length).toBeLessThanOrEqual(ours.bound[i]!);
    }
  });
});
