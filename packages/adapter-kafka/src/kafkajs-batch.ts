import { exactOffset } from './kafkajs-fetched-record.js';
import { kafkajsInternal, kafkajsVersion, originalKafkajsModule, replaceKafkajsModule } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4's Batch (`consumer/batch.js`, one per fetched partition)
 * drops the records before the fetched offset by parsing every record's
 * offset text into a BigInt (kafkajs's Long) and comparing: for a
 * FetchedRecord, that is its offset turned into text and parsed back, about
 * 3 % of the client CPU of an ordered consume. This replacement is the same
 * Batch (same prototype, same fields, same filters in the same order) that
 * compares a FetchedRecord's offset as the number it holds, and any other
 * record as kafkajs does.
 *
 * kafkajs's consumer group requires Batch when kafkajs itself loads, so the
 * replacement must be in the require cache before that: `./before-kafkajs.js`
 * applies it, first of the adapter's imports. If kafkajs was loaded before
 * the adapter (the application imported it first), nothing changes. The
 * whole class is rewritten from kafkajs 2.2.4's, so another kafkajs version
 * keeps its own Batch.
 */
interface LongLike {
  gte(other: LongLike): boolean;
}
interface LongClass {
  fromValue(value: unknown): LongLike;
}
interface KafkajsRecordLike {
  offset: string;
  isControlRecord?: boolean;
}
interface PartitionData {
  partition: number;
  highWatermark: string;
  abortedTransactions?: unknown[];
  messages: KafkajsRecordLike[];
}
type FilterAborted = (input: { messages: KafkajsRecordLike[]; abortedTransactions?: unknown[] }) => KafkajsRecordLike[];
type BatchClass = new (topic: string, fetchedOffset: string, partitionData: PartitionData) => object;

const PATCHED = Symbol.for('busline.kafkajs.batch');
/** The kafkajs whose Batch this one reproduces. */
export const KAFKAJS_BATCH_VERSION = '2.2.4';

/** kafkajs's own Batch, as loaded (for the batch-for-batch test). */
export function originalKafkajsBatch(): BatchClass | undefined {
  return originalKafkajsModule<BatchClass>('consumer/batch.js', PATCHED);
}

/** The records at or past `fetchedOffset`, in order. */
function withinOffset(Long: LongClass, records: KafkajsRecordLike[], fetchedOffset: unknown): KafkajsRecordLike[] {
  // kafkajs passes the offset as decimal text; anything else takes kafkajs's path.
  const from = typeof fetchedOffset === 'string' ? Number(fetchedOffset) : NaN;
  const exact = Number.isSafeInteger(from) && String(from) === fetchedOffset;
  let longFrom: LongLike | undefined;
  return records.filter((record) => {
    const offset = exact ? exactOffset(record) : undefined;
    if (offset !== undefined) return offset >= from;
    longFrom ??= Long.fromValue(fetchedOffset);
    return Long.fromValue(record.offset).gte(longFrom);
  });
}

export function applyKafkajsBatch(): boolean {
  if (kafkajsVersion() !== KAFKAJS_BATCH_VERSION) return false;
  const Long = kafkajsInternal<LongClass>('utils/long.js');
  const filterAbortedMessages = kafkajsInternal<FilterAborted>('consumer/filterAbortedMessages.js');
  if (Long === undefined || filterAbortedMessages === undefined) return false;
  return replaceKafkajsModule<BatchClass>('consumer/batch.js', 'consumer/consumerGroup.js', PATCHED, (Original) => {
    // A constructor that returns the object it built: `new Batch(…)` gives an instance of kafkajs's class.
    const Batch = function (topic: string, fetchedOffset: string, partitionData: PartitionData): object {
      const batch = Object.create(Original.prototype) as Record<string, unknown>;
      batch.fetchedOffset = fetchedOffset;
      const { abortedTransactions, messages } = partitionData;
      batch.topic = topic;
      batch.partition = partitionData.partition;
      batch.highWatermark = partitionData.highWatermark;
      batch.rawMessages = messages;
      const within = withinOffset(Long, messages, fetchedOffset);
      batch.messagesWithinOffset = within;
      batch.messages = filterAbortedMessages({ messages: within, abortedTransactions }).filter((message) => !message.isControlRecord);
      return batch;
    };
    Batch.prototype = Original.prototype;
    return Batch as unknown as BatchClass;
  });
}
