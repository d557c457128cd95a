import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { createEventBus } from '@busline/core';
import { adapter } from '../dist/index.js';
const N = Number(process.env.N ?? 100000);
const topic = `prof-pub-${Date.now().toString(36)}`;
const pub = await createEventBus({ url: 'kafka://127.0.0.1:9092', group: 'prof-pub', topics: { [topic]: { partitions: 6 } }, ...(process.env.KAFKA ? { kafka: JSON.parse(process.env.KAFKA) } : {}) }, { adapter });
await pub.start();
const payload = new Uint8Array(256);
const run = async (n) => { let inflight = []; for (let i = 0; i < n; i++) { inflight.push(pub.publish(topic, payload, { aggregateId: `agg-${i % 1000}` })); if (inflight.length >= 2000) { await Promise.all(inflight); inflight = []; } } await Promise.all(inflight); };
await run(20000);
const session = new Session(); session.connect();
if (process.env.PROF) { await session.post('Profiler.enable'); await session.post('Profiler.start'); }
const c0 = process.cpuUsage(); const t0 = performance.now();
await run(N);
const ms = performance.now() - t0; const c = process.cpuUsage(c0);
if (process.env.PROF) { const { profile } = await session.post('Profiler.stop'); writeFileSync('/tmp/prof/pub.cpuprofile', JSON.stringify(profile)); }
console.log(`publish ${Math.round(N / ms * 1000)} msg/s, ${((c.user + c.system) / N).toFixed(1)} µs CPU/msg`);
await pub.close();
