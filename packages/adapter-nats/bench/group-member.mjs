// One member of a group in a process of its own, for group.mjs: waits for
// "go", subscribes, reports how many messages it handled until told to stop.
import { createEventBus } from '@busline/core';
import { adapter } from '../dist/index.js';

const spec = JSON.parse(process.env.BENCH_MEMBER);
const bus = await createEventBus({ type: 'nats', url: spec.url, group: spec.group, nats: { maxAckPending: spec.maxAckPending } }, { adapter });
await bus.start();
let handled = 0;
const sleep = spec.handlerMs > 0 ? () => new Promise((resolve) => setTimeout(resolve, spec.handlerMs)) : undefined;
process.on('message', async (m) => {
  if (m === 'go') {
    await bus.subscribe(spec.topic, sleep ? async () => { await sleep(); handled++; } : () => void handled++, { group: spec.group, concurrency: spec.concurrency });
    const timer = setInterval(() => process.send({ handled }), 50);
    timer.unref();
  } else if (m === 'stop') {
    process.send({ handled });
    if (process.env.BENCH_MEMBER_METRICS) console.error(JSON.stringify(bus.metrics().driver));
    await bus.close({ timeoutMs: 5_000 });
    process.exit(0);
  }
});
process.send({ ready: true });
