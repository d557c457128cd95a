/**
 * ProducerClient: the seam between the publish batcher and a Kafka client
 * library. The driver builds one (kafkajs-producer.ts or kafka-ts-producer.ts,
 * by `producer.client`); everything the same for both clients (batching,
 * isolation of failures, error mapping) stays outside.
 */
import type { TopicRecords } from './publish-batcher.js';

/** What the driver needs of a Kafka producer library. */
export interface ProducerClient {
  /** Opens the producer's connections; fails when no broker accepts them. */
  connect(): Promise<void>;
  /** Sends one batch; resolves once the broker acknowledged every record of it (acks all). */
  send(batch: TopicRecords[]): Promise<void>;
  /**
   * Starts a new idempotent producer session: later sends carry a new
   * producer id, so sequence numbers the broker or the old session got out of
   * step with no longer matter (PublishBatcher's `reset`).
   */
  reset(): Promise<void>;
  /** Closes every connection and timer of the producer. */
  close(): Promise<void>;
}
