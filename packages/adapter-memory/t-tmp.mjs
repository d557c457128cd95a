import { createEventBus } from '@busline/core';
import { adapter } from './dist/index.js';
const N = Number(process.argv[2] ?? 200000), KEYS = 1000;
const t00 = performance.now();
const consumer = await createEventBus({ type: 'memory', memory: { broker: 'p' }, group: 'bench' }, { adapter });
const producer = await createEventBus({ type: 'memory', memory: { broker: 'p' } }, { adapter });
await consumer.start(); await producer.start();
await producer.configureTopic('t', {});
let handled = 0, done; const fin = new Promise(r => done = r);
await consumer.subscribe('t', (p) => { if (++handled === N) done(); }, { concurrency: 64, maxInFlight: 2000 });
const t0 = performance.now();
const iv = setInterval(() => console.log('  t+', Math.round(performance.now() - t0), 'handled', handled, 'stats', JSON.stringify(consumer.driver.broker.stats('t').groups.bench), 'pool', consumer.metrics().inFlight), 1000);
for (let from = 0; from < N; from += 1000) {
  const items = []; for (let j = 0; j < 1000; j++) { const i = from + j; items.push({ payload: { k: i % KEYS, s: Math.floor(i / KEYS) }, aggregateId: 'order-' + (i % KEYS) }); }
  await producer.publishBatch('t', items);
  await new Promise(r => setImmediate(r));
}
const t1 = performance.now();
await fin;
const t2 = performance.now();
console.log('publish', Math.round(N / (t1 - t0) * 1000), 'e2e', Math.round(N / (t2 - t0) * 1000), 'publish phase ms', Math.round(t1 - t0), 'total', Math.round(t2 - t0));
clearInterval(iv);
const c0 = performance.now();
await producer.close(); await consumer.close();
console.log('close ms', Math.round(performance.now() - c0));
