// A group member in a process of its own for kafka.poison-restarts.test.ts (run from dist/: build first).
// Its handler kills this process (process.exit(1)) on the record marked as poison and handles every
// other one. Every handling is appended synchronously to a log file, so nothing is lost when the
// process dies: `h <key> <seq> <attempt>` handled, `p <seq> <attempt>` poison begun (then exit),
// `d <seq> <attempts>` dead-lettered. SIGTERM closes the bus gracefully.
import { appendFileSync } from 'node:fs';
import { createEventBus } from '@busline/core';
import { adapter } from '../dist/index.js';

const spec = JSON.parse(process.env.BUSLINE_POISON_MEMBER ?? '{}');
const log = (line) => appendFileSync(spec.log, `${line}\n`);

const bus = await createEventBus(
  {
    url: `kafka://${spec.brokers}`,
    group: spec.group,
    kafka: { consumer: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, commitIntervalMs: 200 } },
  },
  { adapter },
);
bus.on('deadLetter', (e) => log(`d ${e.envelope?.payload?.seq} ${e.attempts}`));
await bus.subscribe(
  spec.topic,
  async (payload, ctx) => {
    if (payload.poison) {
      log(`p ${payload.seq} ${ctx.attempt}`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
    log(`h ${payload.key} ${payload.seq} ${ctx.attempt}`);
  },
  { retry: { maxAttempts: spec.maxAttempts, initialDelayMs: 1, maxDelayMs: 5 } },
);
await bus.start();
process.send?.('ready');
// The test that started this member is gone: so is this member.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  void bus.close({ timeoutMs: 10_000 }).finally(() => process.exit(0));
});
