/**
 * The publish batcher's batches through kafka-ts's producer (pure JS; with
 * kafka-ts-record-batch.ts about 3x kafkajs's publish rate per CPU: README,
 * "The producer client").
 *
 * What it guarantees, and how:
 * - idempotent with acks -1, always (kafka-ts has no other mode; the config
 *   refuses other acks, idempotent false, compression and more than one
 *   batch in flight);
 * - a record goes where the Java client puts it: kafka-ts's default
 *   partitioner is toPositive(murmur2(key)) % partitions (busline keys are
 *   never empty; test/partitioner.test.ts checks Kafka's own vectors);
 * - retries: a failed produce request is sent again unchanged (the broker
 *   drops what it stored already) up to `producer.retries` times, with
 *   backoff from `retry.initialRetryTimeMs` doubling to
 *   `retry.maxRetryTimeMs` (defaults: 40 retries over about 38 s,
 *   longer than a leader election after a broker dies; at most 1 s apart, so
 *   publishing resumes within about a second of a broker being back: a 10 s
 *   cap left it idle for up to 16 s after a restart, measured in
 *   kafka.broker-restart-publish.test.ts); kafka-ts-retry-fix.ts makes every retriable error
 *   and a failed metadata refresh keep retrying. A send that failed before
 *   any produce request was made (no broker reachable for the connection or
 *   the topic's metadata) is repeated the same way: nothing of it was sent;
 * - metadata is fetched again at least every `metadataMaxAgeMs`, so
 *   partitions added to a topic are written to (kafka-ts alone never looks).
 */
import kafkaTs, { type ClientOptions, type Message, type SASLProvider } from 'kafka-ts';
import type { DriverHooks } from '@busline/core/driver';
import type { KafkaConfig } from './config.js';
import { isConnectionError } from './kafka-errors.js';
import { routeKafkaTsLog } from './kafka-ts-log.js';
import { applyKafkaTsRetryFix, kafkaTsInternals, type KafkaTsProducer as Producer } from './kafka-ts-retry-fix.js';
import type { ProducerClient } from './producer-client.js';
import type { TopicRecords } from './publish-batcher.js';

const { createKafkaClient, defaultPartitioner, saslPlain, saslScramSha256, saslScramSha512, oAuthBearer } = kafkaTs;

/** kafka-ts's SASL provider for busline's `sasl` option (the config refuses "aws", which kafka-ts lacks). */
function saslProvider(sasl: KafkaConfig['sasl']): SASLProvider | null {
  if (sasl === undefined) return null;
  switch (sasl.mechanism) {
    case 'plain':
      return saslPlain(sasl);
    case 'scram-sha-256':
      return saslScramSha256(sasl);
    case 'scram-sha-512':
      return saslScramSha512(sasl);
    case 'oauthbearer': {
      const provide = sasl.oauthBearerProvider;
      return oAuthBearer(async () => ({ access_token: (await provide()).value }));
    }
    case 'aws':
      throw new Error('kafka-ts has no SASL "aws" mechanism (the config refuses it)');
  }
}

/** kafka-ts's client options for busline's `kafka` section. */
export function kafkaTsClientOptions(c: KafkaConfig): ClientOptions {
  return {
    clientId: c.clientId,
    bootstrapServers: c.brokers.map((b) => {
      const at = b.lastIndexOf(':');
      return { host: b.slice(0, at), port: Number(b.slice(at + 1)) };
    }),
    sasl: saslProvider(c.sasl),
    ssl: c.ssl === undefined || c.ssl === false ? null : c.ssl === true ? {} : c.ssl,
    requestTimeout: c.requestTimeoutMs,
    connectTimeout: c.connectionTimeoutMs,
  };
}

export class KafkaTsProducer implements ProducerClient {
  private producer: Producer;
  /** Failed produce attempts, all sends together (kafka-ts-retry-fix.ts counts them). */
  private failedAttempts = 0;
  private metadataAt = performance.now();
  private unroute: (() => void) | undefined;
  /** Sends waiting before they are repeated: close() ends the waits. */
  private readonly backoffs = new Map<NodeJS.Timeout, () => void>();
  private closed = false;

  constructor(
    private readonly config: KafkaConfig,
    private readonly hooks: DriverHooks,
  ) {
    this.producer = this.newProducer();
    this.unroute = routeKafkaTsLog(hooks.log, config.logLevel);
  }

  /** kafka-ts connects on the first send: an empty one connects to the cluster without producing. */
  async connect(): Promise<void> {
    await this.producer.send([]);
    this.metadataAt = performance.now();
  }

  async send(batch: TopicRecords[]): Promise<void> {
    const messages: Message[] = [];
    for (const { topic, messages: records } of batch) {
      // kafka-ts types values as strings but encodes them with Buffer.from, which takes a Buffer as it is.
      // A new object per send: kafka-ts writes the chosen partition into it.
      for (const r of records) messages.push({ topic, key: r.key, value: r.value as unknown as string, headers: r.headers });
    }
    if (performance.now() - this.metadataAt >= this.config.metadataMaxAgeMs) await this.refreshMetadata();
    for (let attempt = 0; ; attempt++) {
      const failedBefore = this.failedAttempts;
      try {
        await this.producer.send(messages);
        return;
      } catch (error) {
        // Repeated only when no produce attempt failed meanwhile (of this send or one beside it): then
        // this one failed before it sent anything, and repeating it cannot store a record twice.
        const unsent = this.failedAttempts === failedBefore && isConnectionError(error);
        if (!unsent || this.closed || attempt >= this.config.producer.retries) throw error;
        await this.pause(Math.min(this.config.retry.maxRetryTimeMs, this.config.retry.initialRetryTimeMs * 2 ** attempt));
        // A closed kafka-ts producer would connect again on send.
        if (this.closed) throw error;
      }
    }
  }

  /**
   * A new kafka-ts producer (new connections, new producer id) in place of the
   * current one. kafka-ts already takes a new producer id after a request
   * failed for good; a producer of its own makes the new session certain.
   */
  async reset(): Promise<void> {
    if (this.closed) return;
    const old = this.producer;
    this.producer = this.newProducer();
    void old.close().catch(() => undefined);
    await this.producer.send([]);
    this.metadataAt = performance.now();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [timer, wake] of this.backoffs) {
      clearTimeout(timer);
      wake();
    }
    try {
      await this.producer.close();
    } finally {
      this.unroute?.();
      this.unroute = undefined;
    }
  }

  private newProducer(): Producer {
    const c = this.config;
    const producer = createKafkaClient(kafkaTsClientOptions(c)).createProducer({
      allowTopicAutoCreation: false,
      partitioner: defaultPartitioner,
      // kafka-ts joins queued sends to one broker up to this many records; the batcher already cut the batch.
      maxBatchSize: c.producer.maxBatchMessages,
      maxRetries: c.producer.retries,
      retryDelayMs: c.retry.initialRetryTimeMs,
      maxRetryDelayMs: c.retry.maxRetryTimeMs,
    });
    applyKafkaTsRetryFix(producer, () => {
      this.failedAttempts++;
      this.hooks.count('produceAttemptsFailed');
    });
    return producer;
  }

  /** Fetches the known topics' metadata again (partitions added, leaders moved); a failure is left to the send. */
  private async refreshMetadata(): Promise<void> {
    this.metadataAt = performance.now();
    await kafkaTsInternals(this.producer)
      .refreshMetadata()
      .catch((error: unknown) => this.hooks.log.debug({ kafka: 'kafka-ts', error: String(error) }, 'refreshing the producer metadata failed; the send retries'));
  }

  /** Waits `ms` before a send is repeated; close() ends the wait. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => wake(), ms);
      const wake = () => {
        this.backoffs.delete(timer);
        resolve();
      };
      this.backoffs.set(timer, wake);
    });
  }
}
