/**
 * @busline/conformance — the promises every busline adapter keeps, as test
 * definitions any runner can bind (`defineConformance`, `bindConformance`);
 * `@busline/conformance/vitest` has the one-call vitest binding
 * (`runConformance`). An adapter's test file passes a factory that makes
 * buses on its broker; tests needing a capability the adapter does not
 * declare are skipped by name, never silently passed.
 *
 * Modelled on Watermill's universal Pub/Sub tests (capability-flag driven),
 * Go CDK's pubsub drivertest and Dapr's pub/sub conformance tests.
 */
import { Harness, type ConformanceOptions, type ConformanceTest } from './harness.js';
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
import { registerAtomicBatchTests } from './tests/atomic-batch.js';
import { registerGroupMemberTests } from './tests/group-members.js';
import { registerDriverTests } from './tests/driver.js';
import { registerCloudEventsTests } from './tests/cloudevents.js';
import { registerContentModeTests } from './tests/content-modes.js';
import { registerForeignMessageTests } from './tests/foreign-messages.js';
import { registerOperationsTests } from './tests/operations.js';

export type { BusConfigLike, CapabilityName, DriverMethodName, ConformanceOptions, ConformanceTest, TestSpec } from './harness.js';
export { bindConformance, type RunnerBinding } from './binding.js';
export { MemberProcess, type MemberSpec } from './member-process.js';
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

/** The suite for one adapter: its tests as data, and what runs around them. */
export interface ConformanceSuite {
  readonly name: string;
  readonly groups: readonly { title: string; tests: readonly ConformanceTest[] }[];
  /** Before the first test: learns the adapter's capabilities from a probe bus. */
  setup(): Promise<void>;
  /** After each test: closes the buses it opened. */
  afterEach(): Promise<void>;
  /** After the last test: hands every topic the suite named to `options.cleanup`. */
  teardown(): Promise<void>;
  readonly hookTimeoutMs: number;
}

const GROUPS: [string, (h: Harness) => void][] = [
  ['publish and subscribe', registerPubSubTests],
  ['delivery', registerDeliveryTests],
  ['retries and dead letters', registerDeadLetterTests],
  ['handler faults', registerHandlerFaultTests],
  ['shutdown mid-flight', registerShutdownTests],
  ['group members', registerGroupMemberTests],
  ['publishing', registerPublishingTests],
  ['atomic batches', registerAtomicBatchTests],
  ['driver contract', registerDriverTests],
  ['CloudEvents interop', registerCloudEventsTests],
  ['content modes', registerContentModeTests],
  ['foreign messages', registerForeignMessageTests],
  ['operations', registerOperationsTests],
  ['lifecycle', registerLifecycleTests],
  ['topic strategies', registerTopicTests],
  ['validation', registerValidationTests],
  ['throughput', registerThroughputTests],
];

/** The conformance suite for one adapter, independent of any test runner. */
export function defineConformance(options: ConformanceOptions): ConformanceSuite {
  const h = new Harness(options);
  const groups = GROUPS.map(([title, register]) => ({ title, tests: h.collect(() => register(h)) })).filter((g) => g.tests.length > 0);
  return {
    name: options.name,
    groups,
    setup: () => h.resolveCapabilities(),
    afterEach: () => h.closeAll(),
    teardown: async () => {
      await options.cleanup?.({ topics: [...h.topics] });
    },
    hookTimeoutMs: h.ms(60_000),
  };
}
