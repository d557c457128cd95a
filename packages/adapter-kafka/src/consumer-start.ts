/**
 * startKafkaConsumer: creates the group's kafkajs consumer for a topic set, wires
 * its events to the GroupConsumer, and runs it until it joined the group
 * (and, for a topic read from the end, fetched once). How a consumer is
 * started, apart from when (RestartLoop) and what it delivers (GroupConsumer).
 */
import { BuslineError, ErrorCode, type DriverHooks } from '@busline/core/driver';
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type { KafkaConfig } from './config.js';
import { protocolType, topicNotFound } from './kafka-errors.js';
import { ownConsumer } from './kafkajs-foreign-consumers.js';
import type { SubscriptionRouter } from './subscription-router.js';
import { triesUntil } from './tries-until.js';

/** What a started consumer needs of, and reports to, its GroupConsumer. */
export interface ConsumerStartHost {
  readonly kafka: Kafka;
  readonly group: string;
  readonly config: KafkaConfig['consumer'];
  readonly metadataMaxAgeMs: number;
  readonly hooks: DriverHooks;
  readonly router: SubscriptionRouter;
  /** Makes `consumer` (subscribed to `topics`) the running one and lets eachBatch accept records. */
  attach(consumer: Consumer, topics: string[]): void;
  /** Undoes `attach` after a failed start. */
  detach(consumer: Consumer): void;
  /** `consumer` is the running one (events of an older consumer are ignored). */
  isCurrent(consumer: Consumer): boolean;
  eachBatch(payload: EachBatchPayload): Promise<void>;
  onGroupJoin(consumer: Consumer, payload: { memberId: string; memberAssignment: Record<string, number[]> }): void;
  onCrash(error: Error, restart: boolean): void;
  commit(): Promise<void>;
}

/** Starts a consumer of `topics`; resolves once it joined the group, rejects (disconnected) if it could not. */
export async function startKafkaConsumer(host: ConsumerStartHost, topics: string[]): Promise<void> {
  const c = host.config;
  const consumer: Consumer = ownConsumer(() =>
    host.kafka.consumer({
      groupId: host.group,
      sessionTimeout: c.sessionTimeoutMs,
      rebalanceTimeout: c.rebalanceTimeoutMs,
      heartbeatInterval: c.heartbeatIntervalMs,
      maxBytesPerPartition: c.maxBytesPerPartition,
      maxBytes: c.maxBytes,
      maxWaitTimeInMs: c.maxWaitTimeMs,
      metadataMaxAge: host.metadataMaxAgeMs,
      allowAutoTopicCreation: false,
      // kafkajs's own restart after a crash (its defaults otherwise), but never of a consumer this
      // driver already stopped: a crash during close would bring it back as a zombie group member.
      retry: { retries: 5, restartOnFailure: () => Promise.resolve(host.isCurrent(consumer)) },
    }),
  );
  const latest = topics.some((t) => !host.router.startFromEarliest(t));
  let joined!: () => void;
  let failed!: (error: unknown) => void;
  let fetched!: () => void;
  const join = new Promise<void>((resolve, reject) => {
    joined = resolve;
    failed = reject;
  });
  const firstFetch = new Promise<void>((resolve) => (fetched = resolve));
  let starting = true;
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    host.onGroupJoin(consumer, event.payload);
    joined();
  });
  consumer.on(consumer.events.FETCH, () => fetched());
  consumer.on(consumer.events.REBALANCING, () => {
    if (!host.isCurrent(consumer)) return;
    host.hooks.count('rebalances');
    void host.commit();
  });
  consumer.on(consumer.events.CRASH, (event) => {
    const { error, restart } = event.payload;
    if (starting) {
      if (!restart) failed(error);
      return;
    }
    if (!host.isCurrent(consumer)) return;
    host.onCrash(error, restart);
  });

  try {
    await consumer.connect();
    for (const topic of topics) await subscribeOnceKnown(consumer, topic, host.router.startFromEarliest(topic));
    host.attach(consumer, topics);
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: c.partitionsConsumedConcurrently,
      eachBatch: host.eachBatch,
    });
    await withTimeout(join, c.sessionTimeoutMs + c.rebalanceTimeoutMs, () => `joining consumer group "${host.group}" timed out`);
    // "latest" resolves at the first fetch: wait for it, so nothing published after subscribe() is skipped.
    if (latest) await withTimeout(firstFetch, Math.max(10_000, c.maxWaitTimeMs * 4), () => 'first fetch timed out').catch(() => undefined);
    starting = false;
  } catch (error) {
    starting = false;
    host.detach(consumer);
    await consumer.disconnect().catch(() => undefined);
    throw error;
  }
}

/**
 * How long a subscribe waits for a topic the broker does not know yet. A topic another process
 * (or this one) just created can be unknown to the broker asked for a moment — its metadata
 * lags the controller — and kafkajs gives up on UNKNOWN_TOPIC_OR_PARTITION at once.
 */
const UNKNOWN_TOPIC_WAIT_MS = 5_000;

async function subscribeOnceKnown(consumer: Consumer, topic: string, fromBeginning: boolean): Promise<void> {
  let unknown: unknown;
  for await (const _ of triesUntil(UNKNOWN_TOPIC_WAIT_MS)) {
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning });
      return;
    } catch (error) {
      if (protocolType(error) !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
      unknown = error;
    }
  }
  throw topicNotFound(topic, unknown, `subscribing to "${topic}" failed after ${UNKNOWN_TOPIC_WAIT_MS} ms`);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BuslineError(ErrorCode.BrokerUnavailable, message(), { retryable: true })), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
