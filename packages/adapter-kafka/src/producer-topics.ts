/**
 * ProducerTopics: what the producer must know of a topic before its records
 * may share a `sendBatch` with other topics' records — that it exists, and
 * its `max.message.bytes`.
 *
 * Why: kafkajs fails a whole `sendBatch` when one of its topics is missing
 * (and first retries it for many seconds), so one publish to a missing topic
 * (topic strategy `skip`) would fail or time out every publish sharing its
 * batch. A topic is therefore looked up once (one DescribeConfigs, answered
 * at once for a missing topic), concurrent first publishes share the lookup,
 * and a missing topic fails only its own publishes, never entering a batch.
 * A found topic is remembered until a publish to it fails with an error of
 * the topic (`forget`); a missing one is looked up again on its next publish.
 * When the lookup itself fails (broker down, no DescribeConfigs permission),
 * the publish goes ahead without a limit: the send reports what is wrong.
 */
import type { BuslineError } from '@busline/core/driver';
import { topicNotFound } from './kafka-errors.js';

export interface ProducerTopic {
  /** `max.message.bytes`, or Infinity when unknown. */
  readonly limit: number;
}

const UNKNOWN_LIMIT: ProducerTopic = Object.freeze({ limit: Number.POSITIVE_INFINITY });

export class ProducerTopics {
  private readonly known = new Map<string, ProducerTopic>();
  private readonly lookups = new Map<string, Promise<ProducerTopic | BuslineError>>();

  /** `describe`: the topic's max.message.bytes, null when not told, undefined when the topic does not exist. */
  constructor(private readonly describe: (topic: string) => Promise<number | null | undefined>) {}

  /** What is known of `topic`, synchronously (the hot path), or undefined when it must be looked up. */
  get(topic: string): ProducerTopic | undefined {
    return this.known.get(topic);
  }

  /** Looks `topic` up (shared by concurrent callers): its facts, or the error its publishes fail with. */
  lookup(topic: string): Promise<ProducerTopic | BuslineError> {
    let pending = this.lookups.get(topic);
    if (pending === undefined) {
      pending = this.describe(topic).then(
        (limit): ProducerTopic | BuslineError => {
          if (limit === undefined) return topicNotFound(topic);
          const facts = limit === null ? UNKNOWN_LIMIT : { limit };
          this.known.set(topic, facts);
          return facts;
        },
        () => UNKNOWN_LIMIT,
      );
      this.lookups.set(topic, pending);
      void pending.finally(() => this.lookups.delete(topic));
    }
    return pending;
  }

  forget(topic: string): void {
    this.known.delete(topic);
  }
}
