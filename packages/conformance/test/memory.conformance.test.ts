import { createEventBus, KAFKA_BINDING, type AdapterModule } from '@busline/core';
import { adapter as memoryAdapter, getMemoryBroker, type MemoryConfig } from '@busline/adapter-memory';
import { afterAll, expect } from 'vitest';
import { runConformance } from '../src/vitest.js';

const deleted: string[] = [];

runConformance({
  name: 'memory',
  createBus: (overrides) => createEventBus({ type: 'memory', ...overrides }),
  // The suite names its topics; the process-wide broker forgets them afterwards.
  cleanup: async ({ topics }) => {
    for (const topic of topics) if (getMemoryBroker().deleteTopic(topic)) deleted.push(topic);
  },
});

/**
 * The in-memory broker writing the Kafka binding's `ce_` names: the suite's
 * CloudEvents tests then go through the SDK's Kafka binding, and the tests
 * that read headers run with the naming a Kafka bus has, without a Kafka broker.
 */
const kafkaNamed: AdapterModule<MemoryConfig> = {
  ...memoryAdapter,
  createDriver: (section) => Object.assign(memoryAdapter.createDriver(section), { cloudEvents: KAFKA_BINDING }),
};
runConformance({
  name: 'memory, Kafka CloudEvents naming',
  only: /CloudEvent|foreign|dead-letter|dead-lettered|malformed|round trip/,
  createBus: (overrides) => createEventBus({ type: 'memory', ...overrides }, { adapter: kafkaNamed }),
  cleanup: async ({ topics }) => {
    for (const topic of topics) if (getMemoryBroker().deleteTopic(topic)) deleted.push(topic);
  },
});

afterAll(() => {
  // The suite created topics (each test names its own) and the cleanup hook was handed every one of them.
  expect(deleted.length).toBeGreaterThan(20);
  expect(getMemoryBroker().describeTopic(deleted[0]!)).toBeUndefined();
});
