/**
 * A worker that shuts down cleanly on SIGTERM (what Kubernetes, systemd and
 * `docker stop` send) or SIGINT (Ctrl-C): it stops taking new work, lets the
 * handlers already running finish, and only then exits. A message whose
 * handler finished is acknowledged; one that never started stays with the
 * broker for the next instance. Nothing is cut off half-done.
 *
 * It publishes its own work (a job every 50 ms) so that it runs on the
 * in-memory broker; on a real broker the producer would be another service:
 *
 *   pnpm build && node examples/dist/graceful-shutdown.js
 *   BUSLINE_URL=nats://127.0.0.1:4222 node examples/dist/graceful-shutdown.js
 */
import { createEventBus } from '@busline/core';

interface Job {
  n: number;
}

const WORK_MS = 200;

const bus = await createEventBus({ url: process.env.BUSLINE_URL ?? 'memory://', source: 'jobs-worker', group: 'workers' });
bus.on('error', (error, context) => console.error(`error in ${context}: ${error.message}`));

let published = 0;
let started = 0;
let finished = 0;

await bus.subscribe<Job>(
  'jobs',
  async (job) => {
    started++;
    // The handler ignores `context.signal` on purpose: a job this short is
    // worth finishing. A long one would check the signal and stop early (its
    // message is then retried by the next instance).
    await new Promise((resolve) => setTimeout(resolve, WORK_MS));
    finished++;
    console.log(`handled job ${job.n}`);
  },
  { concurrency: 8 },
);
await bus.start();
console.log('ready');

// The producer: one job every 50 ms, each publish awaited (it resolves once stored).
let producing = true;
const producer = (async () => {
  while (producing) {
    await bus.publish('jobs', { n: published + 1 }, { type: 'JobRequested' });
    published++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
})();

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return; // a second signal while closing changes nothing
  stopping = true;
  console.log(`${signal}: stopping`);
  producing = false;
  await producer; // the last publish settles before the bus closes
  // Running handlers get up to 10 s; acknowledgements are flushed before the connection closes.
  await bus.close({ timeoutMs: 10_000 });
  console.log(JSON.stringify({ published, started, finished }));
  process.exit(started === finished ? 0 : 1);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
