/**
 * IsolatingSender: sends one batch for PublishBatcher and says which of its
 * records failed and why, so a failure stays with what caused it and the
 * producer session stays in step with what the broker stored.
 *
 * - When a batch fails with an error that belongs to one topic (unknown, not
 *   authorized) or one record (too large), its topics are sent again apart,
 *   and a too-large topic record by record, so only the culprit fails.
 * - A request refused for its sequence numbers is sent once more in a new
 *   producer session (`reset`).
 * - After a batch failed with anything but a record refused on its own, the
 *   next batch goes out in a new producer session: the failed one may be
 *   stored in part, and kafkajs rolls back the idempotence sequence numbers of
 *   every partition of a failed request, so the next records would be refused
 *   as out of order (and the refused batch sent again, storing its other
 *   partitions twice) or, with the same count, dropped as duplicates.
 *
 * The caller holds the batch's in-flight slot until `send` resolves, so
 * nothing sent later overtakes these records.
 */
import type { OutgoingRecord, TopicRecords } from './publish-batcher.js';

/** What part of a failed batch an error belongs to; `session`: the broker refused the sequence numbers. */
export type FailureScope = 'batch' | 'topic' | 'record' | 'session';

/** How a batch is sent, what an error belongs to, and how a new producer session is started. */
export interface IsolatingSenderOptions {
  /** Sends one batch; resolves when the broker acknowledged all of it. */
  send(batch: TopicRecords[]): Promise<unknown>;
  /** What part of a failed batch an error belongs to (default: the whole batch). */
  scopeOf?(error: unknown): FailureScope;
  /** Starts a new producer session; `cause` is the failure that made it needed. Without it, none is started. */
  reset?(cause: unknown): Promise<void>;
}

export class IsolatingSender<R extends OutgoingRecord> {
  /** The failure after which the producer session can no longer be trusted; the next batch resets it first. */
  private sessionInDoubt: unknown = undefined;
  private readonly scopeOf: (error: unknown) => FailureScope;

  constructor(private readonly options: IsolatingSenderOptions) {
    this.scopeOf = options.scopeOf ?? (() => 'batch');
  }

  /**
   * Sends `records` (`byTopic`: the same records by topic) in a producer session that matches what
   * the broker stored: a new one when an earlier batch failed in a way that may have stored part of
   * it. Resolves with the error of every record that failed; undefined when all were stored.
   */
  async send(records: R[], byTopic: Map<string, R[]>): Promise<Map<R, unknown> | undefined> {
    if (this.sessionInDoubt !== undefined && this.options.reset !== undefined) {
      try {
        await this.options.reset(this.sessionInDoubt);
        this.sessionInDoubt = undefined;
      } catch (error) {
        return new Map(records.map((e) => [e, error]));
      }
    }
    const failures = await this.sendIsolating(records, byTopic);
    // A record refused on its own (too large) was not stored and leaves the session in step.
    if (failures !== undefined) for (const failure of failures.values()) if (this.scopeOf(failure) !== 'record') this.sessionInDoubt = failure;
    return failures;
  }

  /** One `sendBatch`; resolves with its error, or undefined when the broker acknowledged it. */
  private sendOnce(byTopic: Map<string, R[]>): Promise<unknown> {
    const batch: TopicRecords[] = [];
    for (const [topic, messages] of byTopic) batch.push({ topic, messages });
    let sending: Promise<unknown>;
    try {
      sending = this.options.send(batch);
    } catch (error) {
      sending = Promise.reject(error);
    }
    return sending.then(
      () => undefined,
      (error: unknown) => error ?? new Error('sendBatch failed without a reason'),
    );
  }

  /**
   * Sends a batch; when it fails with an error of one topic or one record,
   * sends the parts apart so only the culprit fails. Resolves with the error
   * of every entry that failed (none: all stored). The batch holds its
   * in-flight slot throughout, so later batches cannot overtake it.
   */
  private async sendIsolating(records: R[], byTopic: Map<string, R[]>): Promise<Map<R, unknown> | undefined> {
    let error = await this.sendOnce(byTopic);
    if (error === undefined) return undefined;
    if (this.scopeOf(error) === 'session' && this.options.reset !== undefined) {
      // The broker refused the request for its sequence numbers: the same records once more in a new
      // producer session. It refuses per partition, so records of other partitions of the request may
      // be stored twice (at least once); with a new session after every failed batch this is rare.
      // This batch still holds the only in-flight slot (maxInFlightBatches 1), so nothing later
      // overtakes it and each key's order holds.
      try {
        await this.options.reset(error);
        error = await this.sendOnce(byTopic);
      } catch (resetError) {
        error = resetError;
      }
      if (error === undefined) return undefined;
    }
    const failures = new Map<R, unknown>();
    if (this.scopeOf(error) === 'batch' || (byTopic.size === 1 && records.length === 1)) {
      for (const e of records) failures.set(e, error);
      return failures;
    }
    // Each topic again on its own (in parallel: their partitions are disjoint) with the same
    // records per partition, so what the broker stored of the failed request is recognised
    // by the idempotent producer as a duplicate and not stored twice.
    const parts: [string, R[], unknown][] =
      byTopic.size === 1
        ? [[[...byTopic.keys()][0]!, records, error]]
        : await Promise.all([...byTopic].map(async ([topic, list]): Promise<[string, R[], unknown]> => [topic, list, await this.sendOnce(new Map([[topic, list]]))]));
    let reset = false;
    for (const [topic, list, failure] of parts) {
      if (failure === undefined) continue;
      if (list.length === 1 || this.scopeOf(failure) !== 'record') {
        for (const e of list) failures.set(e, failure);
        continue;
      }
      // Too large somewhere in this topic: record by record in a new producer session (a
      // record the broker stored from the failed request may be stored twice: at-least-once).
      if (!reset) {
        reset = true;
        try {
          await this.options.reset?.(failure);
        } catch (resetError) {
          for (const e of list) failures.set(e, resetError);
          continue;
        }
      }
      for (const e of list) {
        const alone = await this.sendOnce(new Map([[topic, [e]]]));
        if (alone !== undefined) failures.set(e, alone);
      }
    }
    return failures;
  }
}
