import { createEventBus } from '@busline/core';
import { getMemoryBroker } from '@busline/adapter-memory';
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

afterAll(() => {
  // The suite created topics (each test names its own) and the cleanup hook was handed every one of them.
  expect(deleted.length).toBeGreaterThan(20);
  expect(getMemoryBroker().describeTopic(deleted[0]!)).toBeUndefined();
});
