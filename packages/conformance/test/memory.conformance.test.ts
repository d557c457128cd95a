import { createEventBus } from '@busline/core';
import { runConformance } from '../src/index.js';

runConformance({
  name: 'memory',
  createBus: (overrides) => createEventBus({ type: 'memory', ...overrides }),
});
