/**
 * The acknowledgement payloads a consumer publishes to a delivery's reply
 * subject (`$JS.ACK.…`): ack, nak (optionally with a redelivery delay), term
 * and in progress. Pre-encoded once, so settling a message encodes nothing
 * (except a nak with a delay, which carries its delay in nanoseconds).
 */
import { nanos } from '@nats-io/nats-core';

export const ACK = Uint8Array.of(0x2b, 0x41, 0x43, 0x4b); // +ACK
const NAK = Uint8Array.of(0x2d, 0x4e, 0x41, 0x4b); // -NAK
export const TERM = Uint8Array.of(0x2b, 0x54, 0x45, 0x52, 0x4d); // +TERM
/** In progress: restarts the ack wait of the one message (also on an AckPolicy all consumer, where it acknowledges nothing). */
export const WPI = Uint8Array.of(0x2b, 0x57, 0x50, 0x49); // +WPI
const encoder = new TextEncoder();

/** `-NAK`, with `{"delay":<ns>}` when the message is to be redelivered after `delayMs`. */
export function nakPayload(delayMs: number): Uint8Array {
  return delayMs > 0 ? encoder.encode(`-NAK {"delay":${nanos(Math.round(delayMs))}}`) : NAK;
}
