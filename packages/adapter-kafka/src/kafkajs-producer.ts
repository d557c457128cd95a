/**
 * The publish batcher's batches through a kafkajs producer: `sendBatch` with
 * the configured acks and compression, the Java client's murmur2
 * partitioner, and a resend of the records kafkajs acknowledged without
 * sending them (UnsentRecords, kafkajs issue #1303).
 */
import kafkajs, { type Kafka, type Producer } from 'kafkajs';
import type { DriverHooks } from '@busline/core/driver';
import type { KafkaConfig } from './config.js';
import type { ProducerClient } from './producer-client.js';
import type { TopicRecords } from './publish-batcher.js';
import { UnsentRecords } from './unsent-records.js';

const { CompressionTypes } = kafkajs;
const ACKS = { all: -1, leader: 1, none: 0 } as const;

export class KafkajsProducer implements ProducerClient {
  private producer: Producer;
  private readonly unsent = new UnsentRecords();
  private closed = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: KafkaConfig,
    private readonly hooks: DriverHooks,
  ) {
    this.producer = this.newProducer();
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  send(batch: TopicRecords[]): Promise<void> {
    const c = this.config;
    const acks = ACKS[c.producer.acks];
    const compression = c.producer.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    // this.producer at each call: `reset` replaces it.
    const sendBatch = (records: TopicRecords[]) => this.producer.sendBatch({ topicMessages: records, acks, compression, timeout: c.requestTimeoutMs });
    // acks "none" gets no acknowledgement to check.
    if (acks === ACKS.none) return sendBatch(batch).then(() => undefined);
    return this.unsent.send(batch, sendBatch, (records) => {
      this.hooks.count('unsentResent', records);
      this.hooks.log.warn({ kafka: 'producer', records }, 'kafkajs acknowledged a batch without sending some of its records (kafkajs issue #1303); sending them again');
    });
  }

  /**
   * A new producer (new idempotence session) in place of the current one.
   * kafkajs rolls back the sequence numbers of every partition of a produce
   * request that failed, also of partitions the broker stored; sending other
   * records to those partitions with the old session would be refused
   * (out of order) or silently dropped as duplicates.
   */
  async reset(): Promise<void> {
    if (this.closed) return;
    const old = this.producer;
    const fresh = this.newProducer();
    try {
      await fresh.connect();
    } catch (error) {
      void fresh.disconnect().catch(() => undefined);
      throw error;
    }
    // Closed while connecting: close() disconnected the old one only.
    if (this.closed) {
      void fresh.disconnect().catch(() => undefined);
      return;
    }
    this.producer = fresh;
    void old.disconnect().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.producer.disconnect();
  }

  private newProducer(): Producer {
    const c = this.config;
    const producer = this.kafka.producer({
      // The Java client's partitioner (murmur2 of the key), named explicitly: this is also what
      // silences kafkajs's "switched default partitioner" warning. Wrapped to find records kafkajs skipped.
      createPartitioner: this.unsent.partitioner,
      metadataMaxAge: c.metadataMaxAgeMs,
      idempotent: c.producer.idempotent,
      maxInFlightRequests: c.producer.idempotent ? 1 : undefined,
      allowAutoTopicCreation: false,
      retry: { retries: c.producer.retries, initialRetryTime: c.retry.initialRetryTimeMs, maxRetryTime: c.retry.maxRetryTimeMs },
    });
    // Logged, not a connection state: kafkajs reconnects the producer on the next publish (and a broker closes idle
    // connections), so an idle bus would otherwise look unhealthy; a publish that cannot reconnect fails by itself.
    producer.on(producer.events.DISCONNECT, () => {
      if (!this.closed && producer === this.producer) this.hooks.log.info({ kafka: 'producer' }, 'the Kafka producer lost its connection; it reconnects on the next publish');
    });
    return producer;
  }
}
