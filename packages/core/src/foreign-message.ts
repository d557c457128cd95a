/**
 * Foreign messages: records a producer that knows nothing of busline wrote
 * (plain text or JSON, with or without a key, no CloudEvents metadata). A
 * subscription with `{ foreign: true }` hands them to its handler with an
 * envelope made from what the broker itself knows, so busline can join a
 * topic other services already write. Without the option they stay malformed
 * and are dead-lettered, as before.
 */
import type { DeliveredMessage } from './driver.js';
import { aggregateIdSchema, type Envelope, type JsonValue, type Payload } from './envelope.js';
import { newEventId } from './event-id.js';
import { strictUtf8 } from './strict-utf8.js';


/**
 * The body as a payload: the JSON value when it parses as JSON, else the text
 * when it is valid UTF-8, else the bytes. (A body of `"42"` is the number 42,
 * an empty body is the empty string.)
 */
export function foreignPayload(body: Uint8Array): Payload {
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    return body;
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

/**
 * The envelope of a foreign message, from the broker's metadata:
 * - id: `<topic>:<deliveryId>` (Kafka `partition:offset`, the NATS stream
 *   sequence), the same on every delivery; a fresh id per delivery where the
 *   driver has no delivery id (the in-memory broker);
 * - type and source: the topic; version 1;
 * - aggregateId: the message key, when it is a valid aggregate id (ordering
 *   by key holds either way: it uses the key as delivered);
 * - time: the broker's timestamp where the driver gives one, else undefined;
 * - headers: the message's headers as they are.
 */
export function foreignEnvelope(message: Pick<DeliveredMessage, 'topic' | 'key' | 'headers' | 'body' | 'deliveryId' | 'timestamp'>): Envelope {
  const key = message.key;
  const timestamp = message.timestamp;
  return {
    id: message.deliveryId === undefined ? newEventId() : `${message.topic}:${message.deliveryId}`,
    type: message.topic,
    source: message.topic,
    aggregateId: key !== undefined && aggregateIdSchema.safeParse(key).success ? key : undefined,
    version: 1,
    time: timestamp === undefined ? undefined : new Date(timestamp),
    headers: { ...message.headers },
    payload: foreignPayload(message.body),
  };
}
