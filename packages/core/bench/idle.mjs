// What an idle bus costs: one subscription, nothing published; this process's CPU (user + system) over
// BENCH_IDLE_SECONDS (default 20) after a 5 s settle, as a share of one core. The broker is BUSLINE_URL
// (memory:// by default; e.g. kafka://127.0.0.1:9092, nats://127.0.0.1:4222 with the scripted brokers up).
// Target (issue 15): < 1 % of a core.
import { createEventBus } from '@busline/core';

const url = process.env.BUSLINE_URL ?? 'memory://';
const seconds = Number(process.env.BENCH_IDLE_SECONDS ?? 20);
const bus = await createEventBus({ url, logger: false });
await bus.subscribe(`idle-${Date.now()}`, () => {}, { group: 'idle-bench' });
await bus.start();
await new Promise((resolve) => setTimeout(resolve, 5_000));
const c0 = process.cpuUsage();
const t0 = performance.now();
await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
const c = process.cpuUsage(c0);
const share = ((c.user + c.system) / 1_000 / (performance.now() - t0)) * 100;
console.log(`idle bus on ${url.split('://')[0]}: ${share.toFixed(2)} % of a core over ${seconds} s (target < 1 %; client and broker share this machine's cores)`);
await bus.close();
