/**
 * Dead-letter copies: what a subscription publishes to its dead-letter topic
 * before it settles a message it gives up on.
 *
 * - The copy gets an event id of its own, derived from the original id and
 *   the group, so two groups that dead-letter one event store two copies
 *   (brokers that dedupe by id would otherwise keep one), while a copy
 *   published again by the same group (after a crash) is still deduped.
 * - A copy that the broker refuses as too large is shrunk, never retried as
 *   is: first the error text is cut short, then the body is left out and the
 *   copy says where the original is (topic, delivery id, size), so the
 *   failure is on record and the key is not blocked forever.
 */
import { createHash } from 'node:crypto';
import type { PublishOutcome, WireMessage } from './driver.js';
import { bindingOf, type CloudEventsBinding } from './cloudevents-binding.js';
import { ErrorCode, errorCode, errorMessage } from './errors.js';

/** Dead-letter headers, readable by whoever drains the dead-letter topic. */
export const DeadLetterHeader = {
  error: 'busline-dlq-error',
  errorCode: 'busline-dlq-error-code',
  attempts: 'busline-dlq-attempts',
  topic: 'busline-dlq-topic',
  group: 'busline-dlq-group',
  time: 'busline-dlq-time',
  /** The event id of the original message (the copy has an id of its own). */
  originalId: 'busline-dlq-original-id',
  /** The broker's identity of the original (stream sequence, partition:offset), where known. */
  deliveryId: 'busline-dlq-delivery-id',
  /** Set when the body was left out because the copy was too large: the original body's size in bytes. */
  bodyOmitted: 'busline-dlq-body-omitted',
} as const;

/** Why and where a message is dead-lettered: what the copy's error headers are made from. */
export interface DeadLetterCause {
  /** The message given up on, as it was delivered. */
  message: { key?: string | undefined; headers: Record<string, string>; body: Uint8Array; deliveryId?: string | number | undefined };
  /** What the last attempt threw (or why the message could not be decoded). */
  error: unknown;
  /** Handler attempts made. */
  attempts: number;
  /** The topic the message was consumed from. */
  topic: string;
  /** The group that gives up on it. */
  group: string;
  /** The bus's CloudEvents naming; a copy keeps the naming its original was written in. */
  binding: CloudEventsBinding;
  /** The decoded event's id, where the message decoded (a structured-mode message has no id header). */
  eventId?: string | undefined;
}

/** Header values must stay on one line and bounded. */
function headerText(text: string, max: number): string {
  const flat = text.replace(/[\r\n\0]+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The copy's id: stable for (group, original id), different across groups. */
export function deadLetterId(originalId: string, group: string): string {
  return `dlq-${createHash('sha256').update(group).update('\0').update(originalId).digest('hex').slice(0, 32)}`;
}

/** The copies to try in order: full, then with a short error text, then without the body. */
export function deadLetterCopies(cause: DeadLetterCause): WireMessage[] {
  const { message, error, attempts, topic, group } = cause;
  const reason = errorMessage(error);
  const code = errorCode(error);
  const idHeader = bindingOf(message.headers, cause.binding)?.headers.id;
  const originalId = idHeader === undefined ? cause.eventId : message.headers[idHeader];
  const headers: Record<string, string> = {
    ...message.headers,
    [DeadLetterHeader.error]: headerText(reason, 1024),
    [DeadLetterHeader.attempts]: String(attempts),
    [DeadLetterHeader.topic]: topic,
    [DeadLetterHeader.group]: group,
    [DeadLetterHeader.time]: new Date().toISOString(),
  };
  if (code !== undefined) headers[DeadLetterHeader.errorCode] = code;
  if (message.deliveryId !== undefined) headers[DeadLetterHeader.deliveryId] = String(message.deliveryId);
  // The copy's own id: in its id header (binary mode); a structured copy keeps the original's body and gets it as `id` only, for brokers that dedupe.
  const id = originalId === undefined ? undefined : deadLetterId(originalId, group);
  if (originalId !== undefined) headers[DeadLetterHeader.originalId] = originalId;
  if (idHeader !== undefined && id !== undefined) headers[idHeader] = id;
  const key = message.key;
  const short = { ...headers, [DeadLetterHeader.error]: headerText(reason, 96) };
  const stub = { ...short, [DeadLetterHeader.bodyOmitted]: String(message.body.byteLength) };
  return [
    { key, id, headers, body: message.body },
    { key, id, headers: short, body: message.body },
    { key, id, headers: stub, body: new Uint8Array(0) },
  ];
}

/**
 * Publishes the first copy the broker accepts. Resolves undefined once one is
 * stored, or the failure of the last copy tried when the failure is not about
 * size (the caller retries that with backoff).
 */
export async function publishDeadLetter(
  copies: readonly WireMessage[],
  publish: (copy: WireMessage) => Promise<PublishOutcome>,
): Promise<PublishOutcome> {
  let failure: PublishOutcome;
  for (const copy of copies) {
    failure = await publish(copy);
    if (failure === undefined || errorCode(failure) !== ErrorCode.MessageTooLarge) return failure;
  }
  return failure;
}
