/**
 * @busline/adapter-kafka — Apache Kafka for busline: publishing through kafka-ts (or kafkajs), consuming through kafkajs.
 *
 * ```ts
 * import { createEventBus } from '@busline/core';
 * const bus = await createEventBus('kafka://127.0.0.1:9092');
 * ```
 */
import type {} from '@busline/core'; // the module AdapterConfigs is augmented in, below
import type { AdapterModule } from '@busline/core/driver';
import { kafkaConfigSchema, sectionFromUrl, type KafkaConfig, type KafkaConfigInput } from './config.js';
import { KafkaDriver } from './kafka-driver.js';

export { kafkaConfigSchema, sectionFromUrl, DEFAULT_KAFKA_PORT } from './config.js';
export type { KafkaConfig, KafkaConfigInput } from './config.js';
export { KafkaDriver, KAFKA_CAPABILITIES } from './kafka-driver.js';
export { GroupConsumer } from './group-consumer.js';
export { PublishBatcher, recordSize } from './publish-batcher.js';
export type { PublishBatcherOptions, OutgoingRecord, TopicRecords } from './publish-batcher.js';
export type { FailureScope } from './isolating-sender.js';
export { TopicAdmin } from './topic-admin.js';
export { publishError, kafkaError } from './kafka-errors.js';

/**
 * The adapter module `createEventBus` loads for `type: 'kafka'` / `kafka://`; pass it as `{ adapter
 * }` when the package cannot be imported by name (bundled apps).
 */
export const adapter: AdapterModule<KafkaConfig> = {
  type: 'kafka',
  configSchema: kafkaConfigSchema,
  sectionFromUrl,
  createDriver: (section) => new KafkaDriver(section),
};

/** Types the `kafka` section of `createEventBus`'s config (see core's AdapterConfigs). */
declare module '@busline/core' {
  interface AdapterConfigs {
  /** The `kafka` section; `brokers` may come from a kafka:// URL instead. */
    kafka: Partial<KafkaConfigInput>;
  }
}
