import { nuid } from '@nats-io/nats-core';
import {
  BrokerUnavailableError,
  BuslineError,
  PublishTimeoutError,
  ErrorCode,
  errorMessage,
  type DriverHooks,
  type PublishCallOptions,
  type PublishOutcome,
  type WireMessage,
} from '@busline/core/driver';
import type { Session } from './driver.js';
import type { FastBatchPublisher } from './fast-batch.js';
import { publishSubject } from './partition-layout.js';
import { isMaxPayloadError, messageTooLarge } from './publish-errors.js';
import type { PublishItem } from './publisher.js';
import { ATOMIC_BATCH_SERVER } from './server-version.js';
import { MSG_ID_HEADER, encodeHeaders, headerBlockSize, headerProblem, outgoingHeaders } from './wire.js';

/**
 * The way one publish call goes out (NatsDriver.publish picks the route by
 * the topic's persistence). A persistent topic's messages become
 * PublishItems (headers, the `Nats-Msg-Id`, a partitioned topic's subject)
 * and go through the pipelined Publisher, as one fast-ingest batch, or as one
 * atomic batch; an ephemeral topic's are written to core NATS.
 */

/** The header whose value is the event id (CloudEvents `id`); it becomes `Nats-Msg-Id`. */
const EVENT_ID_HEADER = 'ce-id';
/** Calls with at least this many messages (publishBatch) go as one fast-ingest batch. */
const FAST_BATCH_MIN = 32;

/** A persistent topic's messages: each checked and given its message id, then sent one of the three ways. */
export function publishPersistent(session: Session, hooks: DriverHooks, topic: string, messages: readonly WireMessage[], options: PublishCallOptions): Promise<PublishOutcome[]> {
  const count = messages.length;
  const partitioned = (session.admin.partitionsFor(topic) ?? options.topic.partitions ?? 1) > 1;
  let outcomes: PublishOutcome[] | undefined;
  let positions: number[] | undefined;
  const items: PublishItem[] = [];
  for (let i = 0; i < count; i++) {
    const message = messages[i]!;
    const headers = outgoingHeaders(message.key, message.headers);
    // The event id (`id`, set by core in either content mode; else the id header) dedupes a re-sent copy; a message without one gets a fresh id so re-sends after a reconnect still dedupe.
    const msgId = message.id ?? headers[EVENT_ID_HEADER] ?? message.headers[MSG_ID_HEADER] ?? nuid.next();
    const hlen = headerBlockSize(headers, msgId);
    if (hlen < 0) {
      outcomes ??= new Array<PublishOutcome>(count).fill(undefined);
      positions ??= Array.from({ length: i }, (_, j) => j);
      outcomes[i] = new BuslineError(ErrorCode.PublishRejected, `cannot publish to "${topic}": ${headerProblem(headers, msgId)}`, { retryable: false });
      continue;
    }
    positions?.push(i);
    // Partitioned: the key goes into the subject, where the stream's transform reads the partition from it.
    if (partitioned) items.push({ body: message.body, headers, msgId, hlen, subject: publishSubject(topic, message.key ?? msgId) });
    else items.push({ body: message.body, headers, msgId, hlen });
  }
  if (options.atomic === true) return publishAtomic(session, topic, items, outcomes, options.timeoutMs);
  const sent =
    items.length >= FAST_BATCH_MIN && session.fast !== undefined && session.admin.batchedFor(topic)
      ? publishFast(session, hooks, session.fast, topic, items, options.timeoutMs)
      : session.publisher.publish(topic, topic, items, options.timeoutMs);
  if (outcomes === undefined || positions === undefined) return sent;
  const all = outcomes;
  const at = positions;
  return sent.then((results) => {
    results.forEach((outcome, j) => (all[at[j]!] = outcome));
    return all;
  });
}

/**
 * Many messages in one call (publishBatch) as one fast-ingest batch: the
 * server acknowledges every few hundred instead of each. What the batch did
 * not store (it ended early: an error, a disconnect) goes the per-message
 * way with the same ids, so dedupe keeps it stored once and in order.
 */
async function publishFast(session: Session, hooks: DriverHooks, fast: FastBatchPublisher, topic: string, items: PublishItem[], timeoutMs: number): Promise<PublishOutcome[]> {
  const started = Date.now();
  const result = await fast.publish(topic, items, timeoutMs);
  const outcomes = new Array<PublishOutcome>(items.length).fill(undefined);
  if (result.stored === items.length) return outcomes;
  if (result.refused) session.admin.noBatches(topic);
  hooks.count('fast_batch_rest_resent', items.length - result.stored);
  const left = timeoutMs - (Date.now() - started);
  const rest = items.slice(result.stored);
  const restOutcomes =
    left > 0 ? await session.publisher.publish(topic, topic, rest, left) : rest.map(() => new PublishTimeoutError(topic, timeoutMs, result.error));
  restOutcomes.forEach((outcome, i) => (outcomes[result.stored + i] = outcome));
  return outcomes;
}

/** All or none: a message the client refused already refuses the whole call. */
async function publishAtomic(session: Session, topic: string, items: PublishItem[], refused: PublishOutcome[] | undefined, timeoutMs: number): Promise<PublishOutcome[]> {
  const problem = refused?.find((outcome) => outcome !== undefined);
  if (problem !== undefined) {
    const error = new BuslineError(problem.code, `atomic batch to "${topic}" not stored: ${problem.message}`, { cause: problem, retryable: false });
    return refused!.map(() => error);
  }
  if (session.atomic === undefined) {
    const error = new BuslineError(ErrorCode.Unsupported, `atomic batches need nats-server ${ATOMIC_BATCH_SERVER} or later (connected to ${session.nc.info?.version})`);
    return items.map(() => error);
  }
  return session.atomic.publish(topic, session.admin.streamFor(topic), items, timeoutMs);
}

/** Core NATS, at most once: written to the connection, no acknowledgement; refused while disconnected. */
export function publishEphemeral(session: Session, topic: string, messages: readonly WireMessage[]): PublishOutcome[] {
  if (!session.hub.isConnected) {
    const error = new BrokerUnavailableError(`not connected to NATS; ephemeral messages to "${topic}" are not queued`);
    return messages.map(() => error);
  }
  const maxPayload = session.nc.info?.max_payload;
  return messages.map((message) => {
    const flat = outgoingHeaders(message.key, message.headers);
    const headers = encodeHeaders(flat, undefined);
    if (typeof headers === 'string') return new BuslineError(ErrorCode.PublishRejected, `cannot publish to "${topic}": ${headers}`, { retryable: false });
    try {
      session.nc.publish(topic, message.body, { headers });
      return undefined;
    } catch (error) {
      // The client checks max_payload itself (before writing: the server would drop the connection over it).
      if (isMaxPayloadError(error)) return messageTooLarge(topic, headerBlockSize(flat, undefined) + message.body.length, maxPayload, error);
      return new BrokerUnavailableError(`publishing to "${topic}" failed: ${errorMessage(error)}`, error);
    }
  });
}
