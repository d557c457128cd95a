/**
 * The shared conformance suite against a real Kafka broker
 * (BUSLINE_KAFKA_BROKERS, default 127.0.0.1:9092). Skipped with BUSLINE_BROKERS=none.
 */
import { describe, it } from 'vitest';
import { createEventBus } from '@busline/core';
import { runConformance } from '@busline/conformance';
import { adapter } from '../src/index.js';
import { BROKERS, NO_BROKER } from './helpers.js';

if (NO_BROKER) {
  describe.skip('busline conformance: kafka (BUSLINE_BROKERS=none)', () => {
    it.skip('needs a Kafka broker', () => undefined);
  });
} else {
  runConformance({
    name: 'kafka',
    // `adapter` is passed so the suite also runs where the app root does not depend on @busline/adapter-kafka.
    createBus: (o) => createEventBus({ type: 'kafka', url: `kafka://${BROKERS}`, ...o }, { adapter }),
    timeoutScale: 3,
  });
}
