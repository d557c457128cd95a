/**
 * One member of a group in a process of its own, for the conformance tests
 * that kill or restart members. Started by `MemberProcess` with an IPC
 * channel and its spec in BUSLINE_MEMBER (JSON). It subscribes, reports every
 * handling to the parent (begin and end, on the machine's monotonic clock),
 * closes gracefully on SIGTERM (then reports its driver counters) and dies
 * on SIGKILL like any process.
 */
import { createEventBus, type AdapterModule } from '@busline/core';
import { failsFirst } from './helpers.js';
import type { MemberSpec } from './member-process.js';

const spec = JSON.parse(process.env.BUSLINE_MEMBER ?? '{}') as MemberSpec;
const send = (message: unknown) => process.send?.(message);
/**
 * Resolves once the report is written to the IPC channel: a handling's end must reach the parent
 * before its acknowledgement can leave, or a kill -9 right after the ack loses the report and the
 * checker counts an acknowledged message as never handled.
 */
const report = (message: unknown) => new Promise<void>((resolve) => (process.send ? process.send(message, () => resolve()) : resolve()));


const options = spec.adapterModule ? { adapter: ((await import(spec.adapterModule)) as { adapter: AdapterModule }).adapter } : {};
const bus = await createEventBus(spec.config as never, options);
bus.on('error', (error, context) => send({ t: 'error', message: `${context}: ${error.message}` }));
await bus.start();
let next = 0;
await bus.subscribe(
  spec.topic,
  async (payload, ctx) => {
    const { key, seq } = payload as { key: string; seq: number };
    const id = next++;
    await report({ t: 'b', id, key, seq, at: String(process.hrtime.bigint()) });
    await new Promise((resolve) => setTimeout(resolve, Math.random() * spec.handlerMs));
    const fail = ctx.attempt === 1 && failsFirst(ctx.envelope.id, spec.failPercent);
    await report({ t: 'e', id, ok: !fail, at: String(process.hrtime.bigint()) });
    if (fail) throw new Error('transient');
  },
  { group: spec.group, concurrency: 8, retry: { maxAttempts: 5, initialDelayMs: 5, maxDelayMs: 50 } },
);
// The test that started this member is gone (it timed out, or its runner was killed): so is this member.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  void bus
    .close({ timeoutMs: 10_000 })
    // The driver's counters (rebalances, drains, abandoned records), sent before the process exits.
    .finally(() => process.send?.({ t: 'metrics', driver: bus.metrics().driver }, () => process.exit(0)) ?? process.exit(0));
});
// Only now: a SIGTERM sent as soon as the parent hears this must find the handler above in place.
send({ t: 'ready' });
