/**
 * What `publishBatch` does apart from the bus: each item is checked and
 * encoded on its own, so an invalid item is reported by its index while the
 * others are still sent; an atomic batch is all or nothing, so one invalid
 * item refuses every item, and it needs a broker and a topic that can store
 * a batch atomically.
 */
import type { CloudEventsBinding } from './cloudevents-binding.js';
import type { ContentMode } from './content-mode.js';
import type { WireMessage } from './driver.js';
import { encodeNewEnvelope } from './envelope-encoding.js';
import type { EnvelopeOptions, Payload } from './envelope.js';
import { BuslineError, ErrorCode } from './errors.js';
import { atomicOnEphemeral, toBuslineError } from './publish-pipeline.js';
import { BATCH_ITEM_NAMES, checkOptionNames } from './publish-options.js';
import type { TopicOptions } from './topic.js';

export interface BatchItem<P = Payload> extends EnvelopeOptions {
  /** The item's payload (JSON or bytes, like `publish`). */
  payload: P;
}
/** Options of `publishBatch`. */
export interface BatchOptions {
  /** Overrides the bus's publish timeout for this call. */
  timeoutMs?: number;
  /**
   * Store every item or none (where `bus.capabilities.atomicBatch`; otherwise
   * UNSUPPORTED). An invalid item, a broker refusal, or an event id already
   * stored within the dedupe window (or repeated in the batch) fails every
   * item; nothing of the batch is stored then. The broker bounds the size
   * (NATS: 1,000 messages by default).
   */
  atomic?: boolean;
}
/** What `publishBatch` resolves with: the ids and each item that failed (the others are stored). */
export interface BatchResult {
  /** Event id per item, in order ('' where the item was invalid before an id was given). */
  ids: string[];
  /** Items stored. */
  published: number;
  /** Items refused, by index in the call, with why. */
  failed: { index: number; error: BuslineError }[];
}

/** A batch's items encoded: the messages to send (with each one's index in the call), the items refused. */
export interface EncodedBatch {
  /** Event id per item ('' where an invalid item had none). */
  ids: string[];
  /** Items refused before sending, by index. */
  failed: BatchResult['failed'];
  messages: WireMessage[];
  /** Index in the call of each of `messages`. */
  indexes: number[];
}

/** Checks and encodes each item; an invalid one is refused by index, never thrown. */
export function encodeBatch(
  items: readonly BatchItem<unknown>[],
  defaults: { type: string; source: string },
  ce: CloudEventsBinding,
  mode: ContentMode,
): EncodedBatch {
  const ids: string[] = new Array(items.length);
  const failed: BatchResult['failed'] = [];
  const messages: WireMessage[] = [];
  const indexes: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    try {
      checkOptionNames(item, BATCH_ITEM_NAMES, 'publishBatch', undefined, i);
      const message = encodeNewEnvelope(item.payload as Payload, item, defaults, ce, mode);
      ids[i] = message.id!;
      messages.push(message);
      indexes.push(i);
    } catch (error) {
      ids[i] = item?.id ?? '';
      failed.push({ index: i, error: toBuslineError(error) });
    }
  }
  return { ids, failed, messages, indexes };
}

/** Throws UNSUPPORTED when `{ atomic: true }` cannot be honoured for `topic`. */
export function checkAtomicBatch(topic: string, atomicBatch: boolean, adapter: string, persistence: TopicOptions['persistence']): void {
  if (!atomicBatch) {
    throw new BuslineError(
      ErrorCode.Unsupported,
      `publishBatch to "${topic}" with { atomic: true }: the ${adapter} adapter cannot store a batch atomically here ` +
        '(NATS needs nats-server 2.12 or later; the in-memory broker always can); publish without `atomic`',
      { details: { topic, adapter } },
    );
  }
  if (persistence === 'ephemeral') throw atomicOnEphemeral(topic);
}

/** An atomic batch with invalid items: nothing is sent, and every item reports why. */
export function atomicRefusal(ids: string[], invalid: BatchResult['failed'], count: number): BatchResult {
  const first = invalid[0]!;
  const bad = new Map(invalid.map((f) => [f.index, f.error]));
  const refused = new BuslineError(
    first.error.code,
    `not published: item ${first.index} of this atomic batch is invalid (${first.error.message}), so none of the batch was sent`,
    { details: { index: first.index }, cause: first.error },
  );
  const failed = Array.from({ length: count }, (_, index) => ({ index, error: bad.get(index) ?? refused }));
  return { ids, published: 0, failed };
}
