import { describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { FetchedRecord } from '../src/kafkajs-fetched-record.js';
import { applyKafkajsBatch, originalKafkajsBatch } from '../src/kafkajs-batch.js';
import { kafkajsInternal } from '../src/kafkajs-internals.js';

type BatchClass = new (topic: string, fetchedOffset: string, partitionData: object) => Record<string, unknown> & { isEmpty(): boolean; firstOffset(): string | null; lastOffset(): string; offsetLag(): string };
const require = createRequire(import.meta.url);
const PATCHED = Symbol.for('busline.kafkajs.batch');
/** The built adapter, as an application loads it (`pnpm test` builds first; run alone, build before). */
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** A FetchedRecord at `offset` (a number when exact, kafkajs's text otherwise) with `key`. */
function fetched(offset: number | string, options: { key?: Buffer; control?: boolean; context?: object } = {}): FetchedRecord {
  const key = options.key ?? Buffer.from('k');
  return new FetchedRecord(key, 0, key.length, key.toString(), 0, 0, 0, offset, 0, {}, 2, 0, options.control ?? false, options.context ?? {});
}

/** kafkajs's own record shape: offset as text. */
function plain(offset: string, options: { key?: Buffer; control?: boolean; context?: object } = {}) {
  return { offset, key: options.key ?? Buffer.from('k'), value: null, headers: {}, isControlRecord: options.control ?? false, batchContext: options.context ?? {} };
}

/** What a Batch exposes, records by offset (kafkajs's readers read these). */
function view(batch: InstanceType<BatchClass>) {
  const offsets = (records: unknown) => (records as { offset: string }[]).map((r) => r.offset);
  return {
    fields: { topic: batch.topic, partition: batch.partition, highWatermark: batch.highWatermark, fetchedOffset: batch.fetchedOffset },
    raw: offsets(batch.rawMessages),
    within: offsets(batch.messagesWithinOffset),
    messages: offsets(batch.messages),
    isEmpty: batch.isEmpty(),
    firstOffset: batch.firstOffset(),
    lastOffset: batch.lastOffset(),
    offsetLag: batch.offsetLag(),
  };
}

describe('kafkajs Batch (offsets of fetched records compared as numbers)', () => {
  it('is in place before kafkajs loads when a process loads the adapter', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
      await import(${JSON.stringify(DIST)});
      const { createRequire } = await import('node:module');
      const require = createRequire(${JSON.stringify(DIST)});
      const batch = require('kafkajs/src/consumer/batch.js');
      console.log(JSON.stringify({ replaced: batch[Symbol.for('busline.kafkajs.batch')] !== undefined, consumerGroupLoaded: require.cache[require.resolve('kafkajs/src/consumer/consumerGroup.js')] !== undefined }));
    `]).toString();
    // Replaced only while the consumer group was not loaded (replaceKafkajsModule): the consumer group loaded after, with this Batch.
    expect(JSON.parse(out)).toEqual({ replaced: true, consumerGroupLoaded: true });
  });

  const abortMarker = { key: Buffer.from([0, 0, 0, 0]), control: true, context: { producerId: '7', inTransaction: true } };
  const inTransaction = { context: { producerId: '7', inTransaction: true } };
  const cases: [string, string, object[], object[]?][] = [
    ['all past the fetched offset', '100', [100, 101, 102].map((o) => fetched(o))],
    ['some before the fetched offset (a compressed batch read from its start)', '101', [99, 100, 101, 102].map((o) => fetched(o))],
    ['none past the fetched offset', '500', [100, 101].map((o) => fetched(o))],
    ['kafkajs records (a foreign consumer ran)', '101', ['100', '101', '102'].map((o) => plain(o))],
    ['mixed, with a control record', '100', [fetched(100), plain('101'), fetched(102, { control: true }), fetched(103)]],
    ['offsets past 2^53 (kafkajs text)', '9007199254740993', [fetched('9007199254740992'), fetched('9007199254740993'), fetched('9007199254740994')]],
    [
      'an aborted transaction, its marker, and what follows',
      '10',
      [fetched(10), fetched(11, inTransaction), fetched(12, inTransaction), fetched(13, abortMarker), fetched(14, inTransaction)],
      [{ firstOffset: '11', producerId: '7' }],
    ],
  ];

  it.each(cases)('%s: the same batch as kafkajs 2.2.4 makes', (_, fetchedOffset, messages, abortedTransactions) => {
    expect(applyKafkajsBatch()).toBe(true);
    const Patched = require('kafkajs/src/consumer/batch.js') as BatchClass;
    const Original = originalKafkajsBatch() as BatchClass;
    expect(Patched).not.toBe(Original);
    expect((Patched as unknown as Record<symbol, unknown>)[PATCHED]).toBe(Original);
    const partitionData = { partition: 3, highWatermark: '600', abortedTransactions, messages };
    const ours = new Patched('t', fetchedOffset, partitionData);
    const theirs = new Original('t', fetchedOffset, partitionData);
    expect(ours).toBeInstanceOf(Original);
    expect(view(ours)).toEqual(view(theirs));
    expect(Object.keys(ours)).toEqual(Object.keys(theirs));
  });

  it('reads no fetched record\'s offset through kafkajs\'s Long (the point of it)', () => {
    expect(applyKafkajsBatch()).toBe(true);
    const Patched = require('kafkajs/src/consumer/batch.js') as BatchClass;
    const Long = kafkajsInternal<{ fromValue(value: unknown): unknown }>('utils/long.js')!;
    const fromValue = vi.spyOn(Long, 'fromValue');
    try {
      const batch = new Patched('t', '101', { partition: 0, highWatermark: '600', messages: [100, 101, 102].map((o) => fetched(o)) });
      expect(fromValue).not.toHaveBeenCalled();
      expect(view(batch).within).toEqual(['101', '102']);
      // A fetched offset kafkajs would not write (not canonical decimal text) takes kafkajs's path.
      new Patched('t', '0101', { partition: 0, highWatermark: '600', messages: [fetched(101)] });
      expect(fromValue).toHaveBeenCalled();
    } finally {
      fromValue.mockRestore();
    }
  });
});
