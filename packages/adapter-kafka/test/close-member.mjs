// A group member in a process of its own for kafka.close-frozen-broker.test.ts (run from dist/: build
// first). It handles `spec.messages` messages it publishes itself, says 'ready', and on 'close' closes
// its bus with `spec.timeoutMs`, reports how long that took and the error events, and lets go of the
// IPC channel: from then on nothing of the test holds the process, only what the bus left behind.
import { createEventBus } from '@busline/core';
import { adapter } from '../dist/index.js';

const spec = JSON.parse(process.env.BUSLINE_CLOSE_MEMBER ?? '{}');
const bus = await createEventBus(
  {
    url: `kafka://${spec.brokers}`,
    logger: false,
    topics: { [spec.topic]: { partitions: 2 } },
    kafka: { ...spec.kafka, consumer: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 2_000, rebalanceTimeoutMs: 10_000 } },
  },
  { adapter },
);
const errors = [];
bus.on('error', (error) => errors.push({ code: error.code, message: error.message }));
let handled = 0;
let allHandled;
const done = new Promise((resolve) => (allHandled = resolve));
await bus.subscribe(spec.topic, () => void (++handled === spec.messages && allHandled()), { group: spec.group });
await bus.start();
for (let n = 0; n < spec.messages; n++) await bus.publish(spec.topic, { n }, { aggregateId: `k${n % 4}` });
await done;
process.once('message', async () => {
  const started = Date.now();
  await bus.close({ timeoutMs: spec.timeoutMs });
  process.send({ closedInMs: Date.now() - started, errors }, () => process.disconnect());
});
process.send('ready');
