/**
 * The publish batcher on its own (no broker): batching, limits, order,
 * per-message outcomes, timeouts and backpressure.
 */
import { describe, expect, it, vi } from 'vitest';
import { BrokerUnavailableError, ErrorCode, type BuslineError, type WireMessage } from '@busline/core';
import { PublishBatcher, recordSize, type PublishBatcherOptions, type TopicRecords } from '../src/publish-batcher.js';
import { failureScope, publishError } from '../src/kafka-errors.js';

function message(i: number, key = `k-${i % 3}`): WireMessage {
  return { key, headers: { 'ce-id': `id-${i}` }, body: new TextEncoder().encode(`{"i":${i}}`) };
}

interface Sent {
  batch: TopicRecords[];
  resolve(): void;
  reject(error: unknown): void;
}

function harness(options: Partial<PublishBatcherOptions> = {}) {
  const sent: Sent[] = [];
  const waiters: (() => void)[] = [];
  const batcher = new PublishBatcher({
    lingerMs: 0,
    maxBatchMessages: 1_000,
    maxBatchBytes: 1_000_000,
    maxInFlightBatches: 1,
    maxQueuedMessages: 100_000,
    mapError: publishError,
    send: (batch) =>
      new Promise<void>((resolve, reject) => {
        sent.push({ batch, resolve, reject });
        for (const w of waiters.splice(0)) w();
      }),
    ...options,
  });
  /** Resolves once `n` batches were handed to send. */
  const sentCount = async (n: number) => {
    while (sent.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  const ids = (s: Sent) => s.batch.flatMap((t) => t.messages.map((m) => m.headers['ce-id']));
  return { batcher, sent, sentCount, ids };
}

/** A kafkajs protocol error as sendBatch rejects with it (wrapped in its retries error). */
function protocolError(type: string): Error {
  const inner = Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type });
  return Object.assign(new Error('retries exceeded'), { name: 'KafkaJSNumberOfRetriesExceeded', cause: inner, originalError: inner });
}

describe('PublishBatcher', () => {
  it('a request refused for its sequence numbers (out of order) is sent again once in a new producer session; the publishes resolve, nothing later overtakes it', async () => {
    const reset = vi.fn(async () => undefined);
    const { batcher, sent, sentCount, ids } = harness({ scopeOf: failureScope, reset });
    const first = batcher.publish('t', [message(0), message(1)], 10_000);
    await sentCount(1);
    const later = batcher.publish('t', [message(2)], 10_000);
    sent[0]!.reject(protocolError('OUT_OF_ORDER_SEQUENCE_NUMBER'));
    await sentCount(2);
    expect(reset).toHaveBeenCalledTimes(1);
    expect(ids(sent[1]!), 'the same records again, before the later publish').toEqual(['id-0', 'id-1']);
    sent[1]!.resolve();
    expect(await first).toEqual([undefined, undefined]);
    await sentCount(3);
    expect(ids(sent[2]!)).toEqual(['id-2']);
    sent[2]!.resolve();
    expect(await later).toEqual([undefined]);
  });

  it('a request refused for its sequence numbers again after the new session fails its publishes with that error', async () => {
    const reset = vi.fn(async () => undefined);
    const { batcher, sent, sentCount } = harness({ scopeOf: failureScope, reset });
    const call = batcher.publish('t', [message(0)], 10_000);
    await sentCount(1);
    sent[0]!.reject(protocolError('OUT_OF_ORDER_SEQUENCE_NUMBER'));
    await sentCount(2);
    sent[1]!.reject(protocolError('OUT_OF_ORDER_SEQUENCE_NUMBER'));
    const [outcome] = await call;
    expect(outcome?.code).toBe(ErrorCode.PublishRejected);
    expect(reset).toHaveBeenCalledTimes(1);
  });

  it('the batch after a failed one goes out in a new producer session (the failed one may be stored in part, its sequence numbers rolled back)', async () => {
    const reset = vi.fn(async (_cause: unknown) => undefined);
    const { batcher, sent, sentCount, ids } = harness({ scopeOf: failureScope, reset });
    const first = batcher.publish('t', [message(0), message(1)], 10_000);
    await sentCount(1);
    const second = batcher.publish('t', [message(2)], 10_000);
    const lost = Object.assign(new Error('Connection error: ECONNREFUSED'), { name: 'KafkaJSConnectionError', retriable: true });
    sent[0]!.reject(lost);
    expect((await first).map((o) => o?.code)).toEqual([ErrorCode.BrokerUnavailable, ErrorCode.BrokerUnavailable]);
    await sentCount(2);
    expect(reset, 'a new session before the next batch').toHaveBeenCalledTimes(1);
    expect(reset.mock.calls[0]![0], 'with the failure that made it needed').toBe(lost);
    expect(ids(sent[1]!)).toEqual(['id-2']);
    sent[1]!.resolve();
    expect(await second).toEqual([undefined]);
    // A batch that succeeded leaves the session alone.
    const third = batcher.publish('t', [message(3)], 10_000);
    await sentCount(3);
    sent[2]!.resolve();
    expect(await third).toEqual([undefined]);
    expect(reset).toHaveBeenCalledTimes(1);
  });

  it('when the new session cannot start, the next batch fails with that error unsent, and the one after tries again', async () => {
    const down = Object.assign(new Error('Connection error: ECONNREFUSED'), { name: 'KafkaJSConnectionError', retriable: true });
    const reset = vi.fn(async (_cause: unknown) => undefined).mockRejectedValueOnce(down);
    const { batcher, sent, sentCount } = harness({ scopeOf: failureScope, reset });
    const first = batcher.publish('t', [message(0)], 10_000);
    await sentCount(1);
    sent[0]!.reject(protocolError('NOT_LEADER_OR_FOLLOWER'));
    await first;
    const [outcome] = await batcher.publish('t', [message(1)], 10_000);
    expect(outcome?.code).toBe(ErrorCode.BrokerUnavailable);
    expect(sent, 'nothing sent in the session in doubt').toHaveLength(1);
    const third = batcher.publish('t', [message(2)], 10_000);
    await sentCount(2);
    expect(reset).toHaveBeenCalledTimes(2);
    sent[1]!.resolve();
    expect(await third).toEqual([undefined]);
  });

  it('a record refused on its own (too large) leaves the session alone', async () => {
    const reset = vi.fn(async (_cause: unknown) => undefined);
    const { batcher, sent, sentCount } = harness({ scopeOf: failureScope, reset });
    const first = batcher.publish('t', [message(0)], 10_000);
    await sentCount(1);
    sent[0]!.reject(protocolError('MESSAGE_TOO_LARGE'));
    expect((await first)[0]?.code).toBe(ErrorCode.MessageTooLarge);
    const second = batcher.publish('t', [message(1)], 10_000);
    await sentCount(2);
    sent[1]!.resolve();
    expect(await second).toEqual([undefined]);
    expect(reset).not.toHaveBeenCalled();
  });

  it('gathers concurrent publishes into one sendBatch and resolves each with its own outcome', async () => {
    const { batcher, sent, sentCount, ids } = harness({ lingerMs: 5 });
    const calls = Array.from({ length: 50 }, (_, i) => batcher.publish('t', [message(i)], 10_000));
    await sentCount(1);
    expect(sent).toHaveLength(1);
    expect(ids(sent[0]!)).toEqual(Array.from({ length: 50 }, (_, i) => `id-${i}`));
    sent[0]!.resolve();
    const outcomes = await Promise.all(calls);
    expect(outcomes.every((o) => o.length === 1 && o[0] === undefined)).toBe(true);
  });

  it('keeps one batch in flight; publishes made meanwhile form the next batch, in order', async () => {
    const { batcher, sent, sentCount, ids } = harness();
    const first = batcher.publish('t', [message(0)], 10_000);
    await sentCount(1);
    const later = Array.from({ length: 10 }, (_, i) => batcher.publish('t', [message(i + 1)], 10_000));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sent, 'no second batch while the first is unacknowledged').toHaveLength(1);
    sent[0]!.resolve();
    await first;
    await sentCount(2);
    expect(ids(sent[1]!)).toEqual(Array.from({ length: 10 }, (_, i) => `id-${i + 1}`));
    sent[1]!.resolve();
    await Promise.all(later);
    expect(batcher.batches).toBe(2);
  });

  it('cuts batches at maxBatchMessages and maxBatchBytes', async () => {
    const { batcher, sent, sentCount } = harness({ maxBatchMessages: 4, maxInFlightBatches: 5 });
    const all = batcher.publish('t', Array.from({ length: 10 }, (_, i) => message(i)), 10_000);
    await sentCount(3);
    expect(sent.map((s) => s.batch[0]!.messages.length)).toEqual([4, 4, 2]);
    for (const s of sent) s.resolve();
    expect(await all).toEqual(new Array(10).fill(undefined));

    const size = recordSize(message(0));
    const bytes = harness({ maxBatchBytes: size * 3 + 1, maxInFlightBatches: 5 });
    const p = bytes.batcher.publish('t', Array.from({ length: 7 }, (_, i) => message(i)), 10_000);
    await bytes.sentCount(3);
    expect(bytes.sent.map((s) => s.batch[0]!.messages.length)).toEqual([3, 3, 1]);
    for (const s of bytes.sent) s.resolve();
    await p;
  });

  it('groups a batch by topic and keeps each topic\'s order', async () => {
    const { batcher, sent, sentCount } = harness({ lingerMs: 5 });
    const calls = [
      batcher.publish('a', [message(1)], 10_000),
      batcher.publish('b', [message(2)], 10_000),
      batcher.publish('a', [message(3)], 10_000),
    ];
    await sentCount(1);
    expect(sent[0]!.batch.map((t) => [t.topic, t.messages.map((m) => m.headers['ce-id'])])).toEqual([
      ['a', ['id-1', 'id-3']],
      ['b', ['id-2']],
    ]);
    sent[0]!.resolve();
    await Promise.all(calls);
  });

  it('a failed batch fails each of its messages with the mapped error; the next batch is unaffected', async () => {
    const { batcher, sent, sentCount } = harness();
    const first = batcher.publish('t', [message(0), message(1)], 10_000);
    await sentCount(1);
    const second = batcher.publish('t', [message(2)], 10_000);
    const lost = Object.assign(new Error('Connection error: ECONNREFUSED'), { name: 'KafkaJSConnectionError', retriable: true });
    sent[0]!.reject(lost);
    const outcomes = await first;
    expect(outcomes).toHaveLength(2);
    for (const o of outcomes) {
      expect(o).toBeInstanceOf(BrokerUnavailableError);
      expect(o!.retryable).toBe(true);
    }
    await sentCount(2);
    sent[1]!.resolve();
    expect(await second).toEqual([undefined]);
  });

  it('a message not acknowledged in time gets PUBLISH_TIMEOUT; one still queued is never sent', async () => {
    const { batcher, sent, sentCount, ids } = harness();
    const inFlight = batcher.publish('t', [message(0)], 30);
    await sentCount(1);
    const queued = batcher.publish('t', [message(1)], 30);
    const kept = batcher.publish('t', [message(2)], 10_000);
    const [late] = await inFlight;
    expect((late as BuslineError).code).toBe(ErrorCode.PublishTimeout);
    const [never] = await queued;
    expect((never as BuslineError).code).toBe(ErrorCode.PublishTimeout);
    sent[0]!.resolve();
    await sentCount(2);
    expect(ids(sent[1]!), 'the timed-out queued message is skipped').toEqual(['id-2']);
    sent[1]!.resolve();
    expect(await kept).toEqual([undefined]);
  });

  it('beyond maxQueuedMessages a publish waits for room (backpressure) and is then sent in order', async () => {
    const { batcher, sent, sentCount, ids } = harness({ maxQueuedMessages: 2, maxBatchMessages: 2 });
    const a = batcher.publish('t', [message(0)], 10_000);
    await sentCount(1);
    const b = batcher.publish('t', [message(1), message(2)], 10_000);
    const c = batcher.publish('t', [message(3)], 10_000);
    expect(batcher.queued, 'c waits: the queue holds b only').toBe(2);
    sent[0]!.resolve();
    await a;
    await sentCount(2);
    expect(ids(sent[1]!)).toEqual(['id-1', 'id-2']);
    expect(batcher.queued).toBe(1);
    sent[1]!.resolve();
    await sentCount(3);
    expect(ids(sent[2]!)).toEqual(['id-3']);
    sent[2]!.resolve();
    await Promise.all([b, c]);
  });

  it('flush waits for everything in flight; close fails what is still queued with CLOSED', async () => {
    const { batcher, sent, sentCount } = harness();
    const a = batcher.publish('t', [message(0)], 10_000);
    await sentCount(1);
    const b = batcher.publish('t', [message(1)], 10_000);
    let flushed = false;
    const flushing = batcher.flush().then(() => (flushed = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(flushed).toBe(false);
    sent[0]!.resolve();
    await sentCount(2);
    sent[1]!.resolve();
    await flushing;
    await Promise.all([a, b]);

    const c = batcher.publish('t', [message(2)], 10_000);
    await sentCount(3);
    const d = batcher.publish('t', [message(3)], 10_000);
    batcher.close();
    expect(((await d)[0] as BuslineError).code).toBe(ErrorCode.Closed);
    sent[2]!.resolve();
    expect(await c).toEqual([undefined]);
    expect(((await batcher.publish('t', [message(4)], 10_000))[0] as BuslineError).code).toBe(ErrorCode.Closed);
  });

  it('the longest valid timeout arms one capped timer, not a 1 ms timer loop; invalid ones fail at once', async () => {
    const { batcher, sent, sentCount } = harness();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      const call = batcher.publish('t', [message(0)], 2_147_483_647);
      await sentCount(1);
      // A timer beyond 2^31-1 ms would fire after 1 ms and re-arm: watch a few event-loop turns.
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      const delays = spy.mock.calls.map((c) => c[1]);
      expect(delays.filter((d) => d === undefined || d <= 1).length, `timer delays ${delays.join(',')}`).toBe(0);
      expect(delays.every((d) => d! <= 2_147_483_647)).toBe(true);
      sent[0]!.resolve();
      expect(await call).toEqual([undefined]);
    } finally {
      spy.mockRestore();
    }
    for (const timeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      const [outcome] = await batcher.publish('t', [message(1)], timeoutMs);
      expect(outcome?.code, String(timeoutMs)).toBe(ErrorCode.ConfigInvalid);
    }
    expect(sent).toHaveLength(1);
  });
});
