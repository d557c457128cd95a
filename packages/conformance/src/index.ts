/**
 * @busline/conformance — the promises every busline adapter keeps, as one
 * vitest suite. An adapter's test file calls `runConformance` with a factory
 * that makes buses on its broker; tests needing a capability the adapter does
 * not declare are skipped by name, never silently passed.
 *
 * Modelled on Watermill's universal Pub/Sub tests (capability-flag driven),
 * Go CDK's pubsub drivertest and Dapr's pub/sub conformance tests.
 */
import { afterEach, beforeAll, describe } from 'vitest';
import { Harness, type ConformanceOptions } from './harness.js';
import { registerPubSubTests } from './tests/pubsub.js';
import { registerDeliveryTests } from './tests/delivery.js';
import { registerDeadLetterTests } from './tests/dead-letter.js';
import { registerLifecycleTests } from './tests/lifecycle.js';
import { registerTopicTests } from './tests/topics.js';
import { registerValidationTests } from './tests/validation.js';
import { registerThroughputTests } from './tests/throughput.js';
import { registerHandlerFaultTests } from './tests/handler-faults.js';
import { registerShutdownTests } from './tests/shutdown.js';
import { registerPublishingTests } from './tests/publishing.js';
import { registerGroupMemberTests } from './tests/group-members.js';
import { registerDriverTests } from './tests/driver.js';

export type { BusConfigLike, CapabilityName, ConformanceOptions, TestSpec } from './harness.js';
export { Harness } from './harness.js';
export { Collector, deferred, jitter, nextEvent, runWithConcurrency, shuffle, uniqueName, waitFor } from './helpers.js';
export type { Deferred, WaitOptions, DeadLetter } from './helpers.js';
export { readDeadLetters } from './helpers.js';
export { OrderChecker, monotonicNs, type Handling, type OrderReport } from './order-checker.js';

/** Reads `BUSLINE_CONFORMANCE_REPEAT` (stress mode): how many times the whole suite runs. */
export function repeatCount(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.BUSLINE_CONFORMANCE_REPEAT;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BUSLINE_CONFORMANCE_REPEAT must be a positive integer, got "${raw}"`);
  return n;
}

function registerAll(h: Harness): void {
  beforeAll(() => h.resolveCapabilities(), h.ms(30_000));
  afterEach(() => h.closeAll(), h.ms(60_000));
  const group = (title: string, register: (h: Harness) => void) => {
    const tests = h.collect(() => register(h));
    if (tests.length > 0) describe(title, () => tests.forEach((t) => t()));
  };
  group('publish and subscribe', registerPubSubTests);
  group('delivery', registerDeliveryTests);
  group('retries and dead letters', registerDeadLetterTests);
  group('handler faults', registerHandlerFaultTests);
  group('shutdown mid-flight', registerShutdownTests);
  group('group members', registerGroupMemberTests);
  group('publishing', registerPublishingTests);
  group('driver contract', registerDriverTests);
  group('lifecycle', registerLifecycleTests);
  group('topic strategies', registerTopicTests);
  group('validation', registerValidationTests);
  group('throughput', registerThroughputTests);
}

/**
 * Registers the conformance suite with vitest. Call it at the top level of a
 * test file:
 *
 * ```ts
 * runConformance({ name: 'memory', createBus: (o) => createEventBus({ type: 'memory', ...o }) });
 * ```
 */
export function runConformance(options: ConformanceOptions): void {
  const rounds = repeatCount();
  describe(`busline conformance: ${options.name}`, () => {
    if (rounds === 1) {
      registerAll(new Harness(options));
      return;
    }
    for (let round = 1; round <= rounds; round++) {
      describe(`round ${round} of ${rounds}`, () => registerAll(new Harness(options)));
    }
  });
}
