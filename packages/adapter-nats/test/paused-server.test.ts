/**
 * Publishing faster than the broker accepts: the server is frozen (SIGSTOP)
 * while 200,000 un-awaited 1 KB publishes arrive. Before core's publish
 * window the heap grew by ~240 MiB and nothing refused; now publishes beyond
 * the window wait, past the waiting limit they are refused at once with
 * PUBLISH_QUEUE_FULL, the heap stays bounded, and once the server runs again
 * every accepted publish is stored.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ErrorCode, type BuslineError } from '@busline/core';
import { ownServerFixture, SKIP, topicName } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

/** Retained heap: garbage (the refused publishes' errors) is collected before reading. */
function retainedHeap(): number {
  setFlagsFromString('--expose_gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

describe.skipIf(SKIP)('nats: publishing into a frozen server (own server)', () => {
  const own = ownServerFixture(() => PrivateNatsServer.start('paused'));

  it('200,000 un-awaited 1 KB publishes: the window holds, the rest is refused with PUBLISH_QUEUE_FULL, the heap stays bounded, everything accepted is stored', async () => {
    const server = own.server;
    const bus = await own.buses.make(server.url, { publish: { timeoutMs: 60_000, maxInFlight: 10_000, maxWaiting: 20_000 } });
    const topic = topicName('paused');
    await bus.configureTopic(topic, { persistence: 'persistent' });
    await bus.publish(topic, { warm: true });
    const body = new Uint8Array(1_024).fill(42);
    const heapBefore = retainedHeap();
    process.kill(server.pid!, 'SIGSTOP');
    let stored = 0;
    let refused = 0;
    const other: string[] = [];
    const settled: Promise<void>[] = [];
    try {
      for (let i = 0; i < 200_000; i++) {
        // Only the accepted ones are kept; a refusal is counted and dropped, as a fire-and-forget caller would.
        const p = bus.publish(topic, body, { aggregateId: `k-${i % 100}` }).then(
          () => void stored++,
          (error: BuslineError) => {
            if (error.code === ErrorCode.PublishQueueFull) refused++;
            else other.push(error.code);
          },
        );
        if (i < 30_000) settled.push(p);
      }
      await new Promise((resolve) => setImmediate(resolve));
      const grown = (retainedHeap() - heapBefore) / 2 ** 20;
      expect(refused, 'refused at once beyond the window and the waiting limit').toBe(170_000);
      console.log(`[paused server] retained heap growth with 30,000 publishes held: ${grown.toFixed(1)} MiB`);
      expect(grown, 'retained heap growth in MiB with the server frozen').toBeLessThan(120);
      expect(bus.metrics().publishWaiting).toBe(20_000);
    } finally {
      process.kill(server.pid!, 'SIGCONT');
    }
    await Promise.all(settled);
    expect(other).toEqual([]);
    expect(stored).toBe(30_000);
  }, 120_000);
});
