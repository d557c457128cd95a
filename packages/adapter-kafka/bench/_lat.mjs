import { createEventBus } from '@busline/core';
import hdr from 'hdr-histogram-js';
import { adapter } from '../dist/index.js';
const RATE = Number(process.env.RATE ?? 2000), SECONDS = Number(process.env.SECONDS ?? 10);
const url = 'kafka://127.0.0.1:9092';
const topic = `lat-${Date.now().toString(36)}`;
const h = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
const e2e = h(), pub = h();
const publisher = await createEventBus({ url, group: 'lat-pub', topics: { [topic]: { partitions: 6 } } }, { adapter });
const consumer = await createEventBus({ url, group: `lat-c-${Date.now()}`, ...(process.env.KAFKA ? { kafka: JSON.parse(process.env.KAFKA) } : {}) }, { adapter });
await publisher.start();
await publisher.configureTopic(topic, { persistence: 'persistent', partitions: 6 }, { onMismatch: 'ignore' });
let handled = 0; const total = RATE * SECONDS, warm = total / 10;
const gaps = [];
await consumer.subscribeEnvelope(topic, async (env) => {
  const v = new DataView(env.payload.buffer, env.payload.byteOffset);
  const seq = v.getUint32(4), sentAt = v.getFloat64(8);
  if (seq >= warm) e2e.recordValue(Math.max(1, Math.round((performance.timeOrigin + performance.now() - sentAt) * 1000)));
  handled++;
}, { startFrom: 'latest' });
await consumer.start();
await publisher.publish(topic, new Uint8Array(256), { aggregateId: 'warm' });
await new Promise((r) => setTimeout(r, 2000));
handled = 0;
let sent = 0; const start = performance.now();
let lastTick = performance.now(); let maxTickGap = 0;
await new Promise((done) => {
  const timer = setInterval(() => {
    const now = performance.now(); maxTickGap = Math.max(maxTickGap, now - lastTick); lastTick = now;
    if (now - start > 1000 * SECONDS * 0.1) gaps.push(now - lastTick);
    const due = Math.min(total, Math.floor(((now - start) / 1000) * RATE));
    for (; sent < due; sent++) {
      const scheduled = performance.timeOrigin + start + (sent / RATE) * 1000;
      const b = new Uint8Array(256); const v = new DataView(b.buffer); v.setUint32(0, sent % 1000); v.setUint32(4, sent); v.setFloat64(8, scheduled);
      const s = sent;
      publisher.publish(topic, b, { aggregateId: `agg-${sent % 1000}` }).then(() => { if (s >= warm) pub.recordValue(Math.max(1, Math.round((performance.timeOrigin + performance.now() - scheduled) * 1000))); });
    }
    if (sent >= total) { clearInterval(timer); done(); }
  }, 1);
});
while (handled < total) await new Promise((r) => setTimeout(r, 20));
const f = (x) => (x.getValueAtPercentile(50) / 1000).toFixed(1) + ' / ' + (x.getValueAtPercentile(99) / 1000).toFixed(1) + ' / ' + (x.maxValue / 1000).toFixed(1);
console.log(`rate ${RATE}: publish resolved p50/p99/max ${f(pub)} ms; publish-to-handle ${f(e2e)} ms; max timer gap ${maxTickGap.toFixed(1)} ms`);
await Promise.all([publisher.close(), consumer.close()]);
