/** The vitest binding of the conformance suite. */
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { bindConformance } from './binding.js';
import type { ConformanceOptions } from './harness.js';
import { defineConformance, repeatCount } from './index.js';

/**
 * Registers the conformance suite with vitest. Call it at the top level of a
 * test file:
 *
 * ```ts
 * runConformance({ name: 'memory', createBus: (o) => createEventBus({ type: 'memory', ...o }) });
 * ```
 *
 * `BUSLINE_CONFORMANCE_REPEAT=n` runs the whole suite n times (stress mode).
 */
export function runConformance(options: ConformanceOptions): void {
  const suites = Array.from({ length: repeatCount() }, () => defineConformance(options));
  bindConformance(suites, {
    group: (title, body) => describe(title, body),
    test: (title, timeoutMs, run) => it(title, (ctx) => run((reason) => ctx.skip(reason)), timeoutMs),
    beforeAll: (fn, timeoutMs) => beforeAll(fn, timeoutMs),
    afterEach: (fn, timeoutMs) => afterEach(fn, timeoutMs),
    afterAll: (fn, timeoutMs) => afterAll(fn, timeoutMs),
  });
}
