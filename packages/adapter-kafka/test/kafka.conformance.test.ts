/**
 * The shared conformance suite against a real Kafka broker.
 *
 * By default it runs against BUSLINE_KAFKA_BROKERS (default 127.0.0.1:9092,
 * the broker of scripts/brokers), without the broker-restart hook, because
 * that broker is shared. With BUSLINE_KAFKA_PRIVATE=1 it starts a Kafka of
 * its own (KRaft, free ports, data under .tmp/; jars from scripts/brokers'
 * cache) and also runs the broker-restart test against it. Skipped with
 * BUSLINE_BROKERS=none.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { createEventBus } from '@busline/core';
import { runConformance } from '@busline/conformance';
import { adapter } from '../src/index.js';
import { BROKERS, NO_BROKER } from './helpers.js';
import { PrivateKafkaBroker } from './kafka-broker.js';

const usePrivate = process.env.BUSLINE_KAFKA_PRIVATE === '1';

describe.skipIf(NO_BROKER)('kafka adapter', () => {
  let broker: PrivateKafkaBroker | undefined;
  if (usePrivate) {
    beforeAll(async () => {
      broker = await PrivateKafkaBroker.start('conformance');
    }, 180_000);
    afterAll(async () => {
      await broker?.stop();
    }, 60_000);
  }
  runConformance({
    name: 'kafka',
    // `adapter` is passed so the suite also runs where the app root does not depend on @busline/adapter-kafka.
    createBus: (o) => createEventBus({ type: 'kafka', url: `kafka://${broker?.brokers ?? BROKERS}`, ...o }, { adapter }),
    timeoutScale: 3,
    hooks: usePrivate ? { restartBroker: () => broker!.restart() } : {},
  });
});
