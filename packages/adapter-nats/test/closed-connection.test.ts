/**
 * A connection closed for good (its reconnect attempts exhausted) on a server
 * of the test's own: publishes fail at once with the closed error, the
 * fast-ingest batch path included (nats-server ≥ 2.14, a publishBatch of 32
 * or more): a batch still waiting on the server when the connection closed,
 * and one made after it.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, type BatchResult, type ConnectionState, type EventBus } from '@busline/core';
import { FAST_BATCH_SERVER, serverSupported } from '../src/server-version.js';
import { ownServerFixture, PATHS, serverVersion, SKIP, topicName, usePath } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

/** Well above how long the outcomes may take here: a publish that waits it out hung on the dead connection. */
const PUBLISH_TIMEOUT_MS = 20_000;
const items = (n: number) => Array.from({ length: n }, (_, i) => ({ payload: { i } }));

/** When the bus next reports `state`. */
function reported(bus: EventBus, state: ConnectionState): Promise<number> {
  return new Promise((resolve) => bus.on('connection', (s: ConnectionState) => s === state && resolve(Date.now())));
}

function expectClosedError(result: BatchResult, what: string): void {
  expect(result.published, what).toBe(0);
  expect([...new Set(result.failed.map((f) => f.error.code))], what).toEqual([ErrorCode.BrokerUnavailable]);
  expect(result.failed[0]!.error.message, what).toMatch(/the NATS connection closed/);
}

describe.skipIf(SKIP).each(PATHS)('nats: a connection closed for good ($label)', ({ internals }) => {
  usePath(internals);
  const own = ownServerFixture(() => PrivateNatsServer.start('closed-for-good'));

  it('fails a batch pending at the close, and a batch made after it, at once with the closed error', async () => {
    const server = own.server;
    const fast = serverSupported(await serverVersion(server.url), FAST_BATCH_SERVER);
    const bus = await own.buses.make(server.url, { publish: { timeoutMs: PUBLISH_TIMEOUT_MS }, nats: { reconnect: { maxAttempts: 3, timeWaitMs: 500, jitterMs: 0 } } });
    const topic = topicName('closed-for-good');
    expect((await bus.publishBatch(topic, items(50))).failed).toEqual([]);
    expect(bus.metrics().driver.fast_batches, 'batches sent the fast-ingest way').toBe(fast ? 1 : undefined);

    const down = reported(bus, 'disconnected');
    const closed = reported(bus, 'closed');
    await server.stopProcess('SIGKILL');
    try {
      await down;
      // While the client still tries to reconnect: the batch is written to its buffer and waits on the server.
      const pending = bus.publishBatch(topic, items(50));
      const closedAt = await closed;
      const atClose = await pending;
      expect(Date.now() - closedAt, 'ms from the close to the pending batch failing').toBeLessThan(5_000);
      expectClosedError(atClose, 'the batch pending at the close');

      const started = Date.now();
      const after = await bus.publishBatch(topic, items(50));
      expect(Date.now() - started, 'ms a batch made after the close took to fail').toBeLessThan(5_000);
      expectClosedError(after, 'a batch made after the close');
    } finally {
      await server.startProcess();
    }
  }, 60_000);
});
