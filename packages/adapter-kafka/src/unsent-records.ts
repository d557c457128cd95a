/**
 * UnsentRecords: finds the records of an acknowledged `sendBatch` that
 * kafkajs never sent, so the driver sends them again.
 *
 * Why: kafkajs 2.2.4 retries a failed produce only to the brokers that have
 * not answered yet, grouping the records by the partition leaders it knows
 * at the retry. When a broker dies, its partitions move to brokers that
 * already answered the first attempt; their records are then sent to no one,
 * and `sendBatch` resolves as if they had been stored (kafkajs issue #1303,
 * open; PR #1798 unreleased). The cluster-fault test lost a few resolved
 * publishes on each kill -9 of a partition leader this way.
 *
 * How: the producer's partitioner is wrapped to remember the partition it
 * chose for each record; a record whose partition is missing from the
 * acknowledgement was not sent.
 *
 * The same wrapper keeps each record on the partition of its first attempt.
 * kafkajs asks the partitioner again on every retry, and its default one
 * spreads records without a key round-robin, so a retry put other records
 * under the sequence numbers it had rolled back: the broker took them for
 * the duplicates of what it had stored (dropped, yet acknowledged) and
 * stored the first attempt's records a second time on another partition.
 * The Java client, too, picks a record's partition once.
 */
import kafkajs, { type ICustomPartitioner, type RecordMetadata } from 'kafkajs';
import type { OutgoingRecord, TopicRecords } from './publish-batcher.js';

const { Partitioners } = kafkajs;

/** Sends of the missed records before a batch is given up as failed (each send has kafkajs's own retries). */
const MAX_ROUNDS = 5;

export class UnsentRecords {
  private readonly chosen = new WeakMap<object, number>();

  /**
   * The producer's partitioner: the Java client's (murmur2 of the key; round-robin without one),
   * choosing each record's partition once and remembering it.
   */
  readonly partitioner: ICustomPartitioner = () => {
    const inner = Partitioners.DefaultPartitioner();
    return (args) => {
      const earlier = this.chosen.get(args.message);
      if (earlier !== undefined && earlier < args.partitionMetadata.length) return earlier;
      const partition = inner(args);
      this.chosen.set(args.message, partition);
      return partition;
    };
  };

  /** The records of `batch` whose partition the acknowledgement does not name. */
  unsent(batch: TopicRecords[], acknowledged: RecordMetadata[]): TopicRecords[] {
    const acked = new Set(acknowledged.map((r) => `${r.topicName}\u0000${r.partition}`));
    const missed: TopicRecords[] = [];
    for (const { topic, messages } of batch) {
      const left = messages.filter((m: OutgoingRecord) => !acked.has(`${topic}\u0000${this.chosen.get(m)}`));
      if (left.length > 0) missed.push({ topic, messages: left });
    }
    return missed;
  }

  /**
   * Sends `batch` and then, until every record is acknowledged, the records
   * kafkajs skipped (in the batch's order, before the batcher sends anything
   * newer). `onResend` counts them.
   */
  async send(batch: TopicRecords[], sendBatch: (batch: TopicRecords[]) => Promise<RecordMetadata[]>, onResend: (records: number) => void): Promise<void> {
    let pending = batch;
    for (let round = 0; ; round++) {
      pending = this.unsent(pending, await sendBatch(pending));
      if (pending.length === 0) return;
      const records = pending.reduce((n, t) => n + t.messages.length, 0);
      if (round + 1 >= MAX_ROUNDS) {
        throw new kafkajs.KafkaJSError(`${records} records were still not acknowledged after ${MAX_ROUNDS} sends`, { retriable: true });
      }
      onResend(records);
    }
  }
}
