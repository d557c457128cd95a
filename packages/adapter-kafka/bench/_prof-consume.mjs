import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { createEventBus } from '@busline/core';
import { adapter } from '../dist/index.js';
const N = Number(process.env.N ?? 200000);
const topic = process.env.TOPIC ?? `prof-consume-${Date.now().toString(36)}`;
const url = 'kafka://127.0.0.1:9092';
if (!process.env.TOPIC) {
  const pub = await createEventBus({ url, group: 'prof-pub', topics: { [topic]: { partitions: 6 } } }, { adapter });
  await pub.start();
  const payload = new Uint8Array(256);
  const W = 2000; let inflight = [];
  for (let i = 0; i < N; i++) {
    inflight.push(pub.publish(topic, payload, { aggregateId: `agg-${i % 1000}` }));
    if (inflight.length >= W) { await Promise.all(inflight); inflight = []; }
  }
  await Promise.all(inflight);
  await pub.close();
  console.error('published', N, 'to', topic);
}
const bus = await createEventBus({ url, group: `prof-c-${Date.now()}` }, { adapter });
let handled = 0, first = 0, last = 0;
const session = new Session(); session.connect();
let cpu0;
await bus.subscribeEnvelope(topic, async () => {
  if (handled === 0) { first = performance.now(); cpu0 = process.cpuUsage(); if (process.env.PROF) { await session.post('Profiler.enable'); await session.post('Profiler.start'); } }
  handled++; last = performance.now();
}, { ordering: 'key', startFrom: 'earliest' });
await bus.start();
while (handled < N) await new Promise((r) => setTimeout(r, 50));
const c = process.cpuUsage(cpu0);
if (process.env.PROF) { const { profile } = await session.post('Profiler.stop'); writeFileSync('/tmp/prof/consume.cpuprofile', JSON.stringify(profile)); }
console.log(`consume ${Math.round((handled - 1) / (last - first) * 1000)} msg/s, ${((c.user + c.system) / N).toFixed(1)} µs CPU/msg, topic ${topic}`);
await bus.close();
