/**
 * Binding the conformance suite to a test runner. The suite is data
 * (`defineConformance`); a binding maps groups, tests, hooks and skips onto
 * a runner's own API. `runConformance` is the vitest binding; node:test
 * takes a few lines (see the package README).
 */
import type { ConformanceSuite } from './index.js';

/**
 * The few calls of a test runner the suite needs, so `bindConformance` can register it with vitest,
 * jest, node:test or mocha.
 */
export interface RunnerBinding {
  /** Registers a named group of tests (vitest `describe`). */
  group(title: string, body: () => void): void;
  /** Registers a test; `skip` marks it skipped in the runner with the reason and returns. */
  test(title: string, timeoutMs: number, run: (skip: (reason: string) => void) => Promise<void>): void;
  /** Runs once before the group's tests. */
  beforeAll(fn: () => Promise<void>, timeoutMs: number): void;
  /** Runs after each test (the harness closes its buses there). */
  afterEach(fn: () => Promise<void>, timeoutMs: number): void;
  /** Runs once after the group's tests. */
  afterAll(fn: () => Promise<void>, timeoutMs: number): void;
}

/** Registers `suite` (or several rounds of it) with a runner. */
export function bindConformance(suites: ConformanceSuite | ConformanceSuite[], runner: RunnerBinding): void {
  const list = Array.isArray(suites) ? suites : [suites];
  const register = (suite: ConformanceSuite) => {
    runner.beforeAll(() => suite.setup(), suite.hookTimeoutMs);
    runner.afterEach(() => suite.afterEach(), suite.hookTimeoutMs);
    runner.afterAll(() => suite.teardown(), suite.hookTimeoutMs);
    for (const group of suite.groups) {
      runner.group(group.title, () => {
        for (const t of group.tests) {
          runner.test(t.title, t.timeoutMs, async (skip) => {
            const reason = t.skipReason();
            if (reason !== undefined) return skip(reason);
            await t.run();
          });
        }
      });
    }
  };
  runner.group(`busline conformance: ${list[0]!.name}`, () => {
    if (list.length === 1) return register(list[0]!);
    list.forEach((suite, i) => runner.group(`round ${i + 1} of ${list.length}`, () => register(suite)));
  });
}
