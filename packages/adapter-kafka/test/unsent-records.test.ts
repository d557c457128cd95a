/**
 * UnsentRecords finds the records kafkajs acknowledged without sending (its
 * retry after a leader died skips partitions that moved to a broker that had
 * already answered) and sends them again, in order, before the batch resolves.
 */
import { describe, expect, it } from 'vitest';
import type { RecordMetadata } from 'kafkajs';
import type { TopicRecords } from '../src/publish-batcher.js';
import { UnsentRecords } from '../src/unsent-records.js';

const record = (key: string) => ({ key, value: Buffer.from(key), headers: {} });
const partitionMetadata = Array.from({ length: 6 }, (_, i) => ({ partitionId: i, leader: i % 3 }));

/** A stand-in for kafkajs's grouping: the partitioner picks each record's partition, as sendMessages does on every attempt. */
function partitionAll(unsent: UnsentRecords, batch: TopicRecords[]): Map<string, number> {
  const partitioner = unsent.partitioner();
  const where = new Map<string, number>();
  for (const { topic, messages } of batch) {
    for (const message of messages) where.set(message.key!, partitioner({ topic, partitionMetadata: partitionMetadata as never, message: message as never }));
  }
  return where;
}

const ack = (topic: string, partitions: number[]): RecordMetadata[] => partitions.map((partition) => ({ topicName: topic, partition, errorCode: 0 }));

describe('UnsentRecords', () => {
  const keys = Array.from({ length: 24 }, (_, i) => `k-${i}`);
  const batch: TopicRecords[] = [{ topic: 't', messages: keys.map(record) }];

  it('finds exactly the records of partitions missing from the acknowledgement, in batch order', () => {
    const unsent = new UnsentRecords();
    const where = partitionAll(unsent, batch);
    const skipped = where.get('k-0')!;
    const missed = unsent.unsent(batch, ack('t', [0, 1, 2, 3, 4, 5].filter((p) => p !== skipped)));
    expect(missed).toEqual([{ topic: 't', messages: keys.filter((k) => where.get(k) === skipped).map(record) }]);
    expect(unsent.unsent(batch, ack('t', [0, 1, 2, 3, 4, 5]))).toEqual([]);
  });

  it('send() sends the skipped records again until all are acknowledged, and counts them', async () => {
    const unsent = new UnsentRecords();
    const where = partitionAll(unsent, batch);
    const skipped = where.get('k-0')!;
    const sent: string[][] = [];
    const resent: number[] = [];
    await unsent.send(
      batch,
      async (records) => {
        sent.push(records.flatMap((t) => t.messages.map((m) => m.key!)));
        // The first send "forgets" one partition, as kafkajs's retry does; the second acknowledges what it got.
        const partitions = [...new Set(records.flatMap((t) => t.messages.map((m) => where.get(m.key!)!)))];
        return ack('t', sent.length === 1 ? partitions.filter((p) => p !== skipped) : partitions);
      },
      (n) => resent.push(n),
    );
    const expected = keys.filter((k) => where.get(k) === skipped);
    expect(sent).toEqual([keys, expected]);
    expect(resent).toEqual([expected.length]);
  });

  it('keeps a record on the partition of its first attempt, also without a key (kafkajs asks again on every retry)', () => {
    const unsent = new UnsentRecords();
    const partitioner = unsent.partitioner();
    const keyless = Array.from({ length: 7 }, (_, i) => ({ key: null, value: Buffer.from(String(i)), headers: {} }));
    const choose = () => keyless.map((message) => partitioner({ topic: 't', partitionMetadata: partitionMetadata as never, message: message as never }));
    const first = choose();
    // Round-robin spreads them over the 6 partitions (7 records: a second round would start one further on).
    // Each retry must send each record to the same one, or the broker takes other records under the
    // rolled-back sequence numbers for duplicates.
    expect(new Set(first).size).toBeGreaterThan(1);
    expect(choose()).toEqual(first);
    expect(choose()).toEqual(first);
  });

  it('gives up with a retriable error when records stay unacknowledged', async () => {
    const unsent = new UnsentRecords();
    partitionAll(unsent, batch);
    let sends = 0;
    const error = await unsent.send(batch, async () => (sends++, []), () => undefined).catch((e: unknown) => e as { retriable?: boolean; message: string });
    expect(error).toMatchObject({ retriable: true });
    expect(sends).toBe(5);
  });
});
