/**
 * The shared conformance suite against a real Kafka broker: everything on
 * BUSLINE_KAFKA_BROKERS (the broker of scripts/brokers; topics the suite
 * creates there are deleted afterwards), and the broker-restart test on a
 * Kafka of its own (KRaft, free ports, data under .tmp/, jars from
 * scripts/brokers' cache) that it may restart. Skipped with BUSLINE_BROKERS=none.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { createEventBus, type AdapterModule } from '@busline/core';
import { runConformance } from '@busline/conformance/vitest';
import { adapter, type KafkaConfig, type KafkaDriver } from '../src/index.js';
import { BROKERS, NO_BROKER, newAdmin, withProducerClient } from './helpers.js';
import { PrivateKafkaBroker } from './kafka-broker.js';

/** The adapter, recording every topic its drivers create, so they can be deleted afterwards. */
const created = new Set<string>();
const tracking: AdapterModule<KafkaConfig> = {
  ...adapter,
  createDriver(section) {
    const driver = adapter.createDriver(section) as KafkaDriver;
    const create = driver.createTopic.bind(driver);
    driver.createTopic = (topic, options) => {
      created.add(topic);
      return create(topic, options);
    };
    return driver;
  },
};

describe.skipIf(NO_BROKER)('kafka adapter on the scripted broker', () => {
  afterAll(async () => {
    const admin = newAdmin();
    await admin.connect();
    const topics = [...created];
    for (let i = 0; i < topics.length; i += 50) await admin.deleteTopics({ topics: topics.slice(i, i + 50) }).catch(() => undefined);
    await admin.disconnect();
  }, 120_000);
  runConformance({
    name: 'kafka',
    // `adapter` is passed so the suite also runs where the app root does not depend on @busline/adapter-kafka.
    createBus: (o) => createEventBus({ type: 'kafka', url: `kafka://${BROKERS}`, ...o, kafka: withProducerClient() }, { adapter: tracking }),
    // Members in processes of their own; a short session so a killed member's partitions move within the test.
    memberProcess: {
      config: { type: 'kafka', kafka: withProducerClient({ brokers: BROKERS.split(','), consumer: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 1_000 } }) },
      adapterModule: new URL('../dist/index.js', import.meta.url).href,
    },
    timeoutScale: 3,
  });
});

describe.skipIf(NO_BROKER)('kafka adapter on a private broker', () => {
  let broker: PrivateKafkaBroker | undefined;
  beforeAll(async () => {
    broker = await PrivateKafkaBroker.start('conformance');
  }, 180_000);
  afterAll(() => broker?.stop(), 60_000);
  runConformance({
    name: 'kafka (private broker)',
    only: /broker restart/,
    createBus: (o) => createEventBus({ type: 'kafka', url: `kafka://${broker!.brokers}`, ...o, kafka: withProducerClient() }, { adapter }),
    timeoutScale: 3,
    hooks: { restartBroker: () => broker!.restart() },
  });
});
