import type { PublishOutcome } from '@busline/core/driver';

/**
 * One message in the Publisher, from `publish` until its outcome is known:
 * the state it is in (waiting for room in the window, in flight, done), what
 * it is written with (subject, headers, body, and the token of its reply
 * subject), when it was sent and sent again, its deadline, and the call
 * (Batch) its outcome goes to.
 */

/** In the queue, not sent yet. */
export const WAITING = 0;
/** Sent (or being sent), its ack awaited; in the publisher's in-flight map by token. */
export const INFLIGHT = 1;
/** Its outcome is known. */
export const DONE = 2;

/** One `publish` call: an outcome per message, resolved once every message has one. */
export interface Batch {
  readonly outcomes: PublishOutcome[];
  remaining: number;
  resolve(outcomes: PublishOutcome[]): void;
}

export interface Entry {
  state: number;
  /** 0 until first sent; then the number in its reply subject. */
  token: number;
  /** When it was last written (Date.now()); 0 while waiting. */
  sentAt: number;
  /** Times it was sent again because its ack was overdue (each doubles the next wait). */
  resends: number;
  readonly subject: string;
  readonly topic: string;
  readonly body: Uint8Array;
  readonly headers: Record<string, string>;
  readonly msgId: string;
  /** Bytes of the header block (headers + Nats-Msg-Id). */
  readonly hlen: number;
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly batch: Batch;
  readonly index: number;
  /** When JetStream answered "unavailable" and the message is to be sent again: at this time. */
  retryAt: number;
  /** JetStream answered "unavailable" (503) at least once. */
  unavailable: boolean;
}

/**
 * The in-flight messages whose ack is overdue (`resendAfterMs`, doubled per
 * resend) and that are not waiting for a 503 retry; each one's resend is
 * counted. `inflight` is in first-send order, so a message never sent again
 * (no resend, no 503 retry) that is not yet due has nothing due behind it:
 * everything later was first sent no earlier and waits at least as long.
 * The scan stops there, so it only visits the messages sent again ahead of
 * it, and usually just the first.
 */
export function takeOverdue(inflight: Iterable<Entry>, now: number, resendAfterMs: number): Entry[] {
  const found: Entry[] = [];
  for (const entry of inflight) {
    const due = entry.sentAt + resendAfterMs * 2 ** entry.resends;
    if (due > now && entry.resends === 0 && entry.retryAt === 0) return found;
    if (entry.state === INFLIGHT && due <= now && entry.retryAt <= now) {
      entry.resends++;
      found.push(entry);
    }
  }
  return found;
}
