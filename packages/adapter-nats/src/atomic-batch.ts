import { nuid, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import { BrokerUnavailableError, BuslineError, ErrorCode, PublishTimeoutError, errorMessage, type DriverHooks, type PublishOutcome } from '@busline/core/driver';
import { STREAM_HEADERS_TOO_LARGE, STREAM_MESSAGE_TOO_LARGE, isMaxPayloadError, messageTooLarge } from './publish-errors.js';
import type { PublishItem } from './publisher.js';
import { encodeHeaders } from './wire.js';

/**
 * Atomic batch publishing (nats-server ≥ 2.12, streams with `allow_atomic`,
 * ADR-50): the messages of one call carry `Nats-Batch-Id` and
 * `Nats-Batch-Sequence`; the last one also `Nats-Batch-Commit: 1` and a reply
 * subject. The server stages them and stores all of them on the commit, or
 * none, and answers the commit only.
 *
 * An attempt that gets no answer in time, or finds the batch incomplete (a
 * message lost to a disconnect) or the stream busy, is tried again under a
 * new batch id until the deadline. `Nats-Msg-Id` rides along, so the server
 * refuses a batch holding an id it already stored: on a retry that means our
 * earlier attempt was committed (its answer was lost), so the batch is
 * stored; on the first attempt the caller reused an event id.
 */

const BATCH_ID = 'Nats-Batch-Id';
const BATCH_SEQUENCE = 'Nats-Batch-Sequence';
const BATCH_COMMIT = 'Nats-Batch-Commit';
/** One attempt waits this long for the commit's answer before trying again (the server drops an idle batch after 10 s). */
const ATTEMPT_MS = 5_000;
/** Pause before trying again after "too many batches in flight" or a stream without a leader. */
const BUSY_RETRY_MS = 100;

const ERR_DISABLED = 10174;
const ERR_INCOMPLETE = 10176;
const ERR_TOO_LARGE = 10199;
const ERR_DUPLICATE = 10201;
const ERR_TOO_MANY_INFLIGHT = 10210;

interface CommitReply {
  stream?: string;
  seq?: number;
  count?: number;
  error?: { code?: number; err_code?: number; description?: string };
}

type Attempt = { stored: true } | { stored: false; retry: boolean; error: BuslineError };

export class AtomicBatchPublisher {
  constructor(
    private readonly nc: NatsConnection,
    private readonly hooks: DriverHooks,
  ) {}

  /** Stores `items` (each to its own subject, else the topic) all or none; every outcome is the same. */
  async publish(topic: string, stream: string, items: readonly PublishItem[], timeoutMs: number): Promise<PublishOutcome[]> {
    const deadline = Date.now() + timeoutMs;
    let last: BuslineError = new PublishTimeoutError(topic, timeoutMs);
    for (let attempt = 1; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const result = await this.attempt(topic, stream, items, Math.min(left, ATTEMPT_MS), attempt > 1);
      if (result.stored) return items.map(() => undefined);
      last = result.error;
      if (!result.retry) return items.map(() => last);
      this.hooks.count('atomic_batch_retries');
      const pause = Math.min(BUSY_RETRY_MS, deadline - Date.now());
      if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
    }
    const error = last.code === ErrorCode.PublishTimeout ? last : new PublishTimeoutError(topic, timeoutMs, last);
    return items.map(() => error);
  }

  private async attempt(topic: string, stream: string, items: readonly PublishItem[], timeoutMs: number, retried: boolean): Promise<Attempt> {
    const id = nuid.next();
    const count = items.length;
    const headers: MsgHdrs[] = [];
    for (let i = 0; i < count; i++) {
      const encoded = batchHeaders(items[i]!, id, i + 1, i === count - 1);
      if (typeof encoded === 'string') return { stored: false, retry: false, error: new BuslineError(ErrorCode.PublishRejected, `cannot publish to "${topic}": ${encoded}`) };
      headers.push(encoded);
    }
    try {
      for (let i = 0; i < count - 1; i++) this.nc.publish(items[i]!.subject ?? topic, items[i]!.body, { headers: headers[i]! });
    } catch (error) {
      // The client refused a message (too large for max_payload, a closed connection): the commit never goes, the server drops the rest.
      if (isMaxPayloadError(error)) return { stored: false, retry: false, error: messageTooLarge(topic, undefined, this.nc.info?.max_payload, error) };
      return { stored: false, retry: false, error: new BrokerUnavailableError(`atomic batch to "${topic}" not stored: ${errorMessage(error)}`, error) };
    }
    let reply: CommitReply;
    try {
      const commit = await this.nc.request(items[count - 1]!.subject ?? topic, items[count - 1]!.body, { headers: headers[count - 1]!, timeout: timeoutMs });
      reply = commit.json<CommitReply>();
    } catch (error) {
      if (isMaxPayloadError(error)) return { stored: false, retry: false, error: messageTooLarge(topic, undefined, this.nc.info?.max_payload, error) };
      // No answer in time, or no stream leader right now: the outcome is unknown or nothing was stored; try again.
      return { stored: false, retry: true, error: new PublishTimeoutError(topic, timeoutMs, error) };
    }
    if (reply.error === undefined) {
      if (reply.count !== undefined && reply.count !== count) {
        return { stored: false, retry: false, error: rejected(topic, `the server committed ${reply.count} of ${count} messages`, reply) };
      }
      this.hooks.count('atomic_batches');
      return { stored: true };
    }
    const code = reply.error.err_code;
    const what = `${reply.error.description ?? 'error'} (${code ?? reply.error.code})`;
    switch (code) {
      case ERR_DUPLICATE:
        if (retried) return { stored: true };
        return {
          stored: false,
          retry: false,
          error: rejected(topic, `an event id in the batch is already stored in stream "${stream}" (dedupe window) or repeats in the batch, so none of the batch was stored; an atomic batch takes new ids only`, reply),
        };
      case ERR_DISABLED:
        return {
          stored: false,
          retry: false,
          error: rejected(topic, `stream "${stream}" does not allow atomic batches: streams busline creates on nats-server 2.12+ do; this one was made earlier or elsewhere — set allow_atomic on it (nats stream edit) or publish without atomic`, reply),
        };
      case STREAM_MESSAGE_TOO_LARGE:
      case STREAM_HEADERS_TOO_LARGE: {
        const limit = code === STREAM_MESSAGE_TOO_LARGE ? "the stream's max_msg_size" : "the server's 64 KiB limit for headers";
        return { stored: false, retry: false, error: messageTooLarge(topic, undefined, undefined, new Error(what), `${limit} (a message of the atomic batch; none was stored)`) };
      }
      case ERR_TOO_LARGE:
        return { stored: false, retry: false, error: rejected(topic, `${what}: the server's JetStream limit max_batch_size bounds an atomic batch; split it`, reply) };
      case ERR_INCOMPLETE:
      case ERR_TOO_MANY_INFLIGHT:
        return { stored: false, retry: true, error: rejected(topic, what, reply, true) };
      default: {
        // 503 (no leader yet) and other server-side conditions may pass; a 400 is about the batch itself.
        const retry = (reply.error.code ?? 0) >= 500;
        return { stored: false, retry, error: rejected(topic, what, reply, retry) };
      }
    }
  }
}

/** The item's headers with the batch's: its id, the message's place in it, and the commit mark on the last. */
function batchHeaders(item: PublishItem, id: string, seq: number, commit: boolean): MsgHdrs | string {
  const headers: Record<string, string> = { ...item.headers, [BATCH_ID]: id, [BATCH_SEQUENCE]: String(seq) };
  if (commit) headers[BATCH_COMMIT] = '1';
  return encodeHeaders(headers, item.msgId);
}

function rejected(topic: string, why: string, reply: CommitReply, retryable = false): BuslineError {
  return new BuslineError(ErrorCode.PublishRejected, `atomic batch to "${topic}" not stored: ${why}`, {
    retryable,
    details: { topic, errCode: reply.error?.err_code, description: reply.error?.description },
  });
}
