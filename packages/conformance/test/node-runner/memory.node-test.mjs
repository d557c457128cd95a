// The conformance suite under node:test, through bindConformance: proof that the
// suite needs no vitest. Run by node-runner.test.ts (`node --test` on this file).
import { after, afterEach, before, describe, it } from 'node:test';
import { createEventBus } from '@busline/core';
import { bindConformance, defineConformance } from '@busline/conformance';

const suite = defineConformance({
  name: 'memory (node:test)',
  only: /per-key order holds|dead-letter topic no broker|publishWire refuses|broker restart/,
  createBus: (overrides) => createEventBus({ type: 'memory', ...overrides }),
});

bindConformance(suite, {
  group: (title, body) => describe(title, body),
  test: (title, timeoutMs, run) => it(title, { timeout: timeoutMs }, (t) => run((reason) => t.skip(reason))),
  beforeAll: (fn, timeout) => before(fn, { timeout }),
  afterEach: (fn, timeout) => afterEach(fn, { timeout }),
  afterAll: (fn, timeout) => after(fn, { timeout }),
});
