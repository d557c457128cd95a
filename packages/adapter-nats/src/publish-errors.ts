import { BuslineError, ErrorCode, errorMessage } from '@busline/core/driver';
import type { Entry } from './publish-entry.js';

/**
 * What a publish ends with when the server does not take the message: its
 * error acks read (a 503 "unavailable", a message too large for the stream,
 * any other refusal) and turned into busline errors, and the refusals of a
 * message over the server's max_payload. Used by every publish path (per
 * message, atomic batch, ephemeral).
 */

const decoder = new TextDecoder();

/** A 503 error ack: {"error":{"code":503,...}}. */
export function isUnavailable(data: Uint8Array): boolean {
  return data.length < 512 && /"code"\s*:\s*503/.test(decoder.decode(data));
}

export function noStream(entry: Entry): BuslineError {
  return new BuslineError(
    ErrorCode.PublishRejected,
    `JetStream did not take the message to "${entry.topic}" (subject "${entry.subject}"): no stream stores the subject, or JetStream is unavailable ` +
      '— create the topic (topic strategy createOnly/createOrUpdate, or configureTopic) or check the stream\'s subjects; retry once JetStream is back',
    { retryable: true, details: { topic: entry.topic, subject: entry.subject } },
  );
}

/**
 * A message the server will not take because of its size: over the server's
 * max_payload (checked before sending: the server would close the connection
 * over it), or refused by the stream (max_msg_size, headers over 64 KiB).
 * Not retryable: the message must shrink (core's dead-lettering then tries a
 * smaller copy).
 */
export function messageTooLarge(topic: string, size: number | undefined, limit: number | undefined, cause?: unknown, limitName = "the server's max_payload"): BuslineError {
  const what = size === undefined ? 'the message' : `the message (${size} bytes with headers)`;
  return new BuslineError(
    ErrorCode.MessageTooLarge,
    `publish to "${topic}" refused: ${what} exceeds ${limitName}${limit === undefined ? '' : ` (${limit} bytes)`}; shrink the payload or headers`,
    { cause, retryable: false, details: { topic, ...(size === undefined ? {} : { size }), ...(limit === undefined ? {} : { limit }) } },
  );
}

/** The client's own refusal (`InvalidArgumentError: 'payload' max_payload size exceeded` in nats.js 3.4). */
export function isMaxPayloadError(error: unknown): boolean {
  return /max_payload/i.test(errorMessage(error));
}

/** JetStream error codes for a message too large for the stream: max_msg_size, and headers over 64 KiB. */
export const STREAM_MESSAGE_TOO_LARGE = 10054;
export const STREAM_HEADERS_TOO_LARGE = 10097;

export function errorAck(entry: Entry, data: Uint8Array): BuslineError {
  let code: number | undefined;
  let errCode: number | undefined;
  let description = decoder.decode(data);
  try {
    const parsed = JSON.parse(description) as { error?: { code?: number; err_code?: number; description?: string } };
    if (parsed.error) {
      code = parsed.error.code;
      errCode = parsed.error.err_code;
      description = parsed.error.description ?? description;
    }
  } catch {
    // not JSON: keep the text
  }
  if (errCode === STREAM_MESSAGE_TOO_LARGE || errCode === STREAM_HEADERS_TOO_LARGE) {
    const limitName = errCode === STREAM_MESSAGE_TOO_LARGE ? "the stream's max_msg_size" : "the server's 64 KiB limit for headers";
    return messageTooLarge(entry.topic, entry.hlen + entry.body.length, undefined, new Error(description), limitName);
  }
  return new BuslineError(ErrorCode.PublishRejected, `JetStream refused the message to "${entry.topic}": ${description}`, {
    retryable: code === 503 || code === 408,
    details: { topic: entry.topic, code, errCode },
  });
}
