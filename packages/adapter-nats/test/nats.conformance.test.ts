/**
 * The shared conformance suite against a real nats-server with JetStream.
 *
 * By default it runs against BUSLINE_NATS_URL (the server from
 * scripts/brokers), without the broker-restart hook, because that server is
 * shared. With BUSLINE_NATS_PRIVATE=1 the suite starts a nats-server of its
 * own (free port, own store under .tmp/) and also runs the restart test
 * against it. Skipped when BUSLINE_BROKERS=none.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { createEventBus } from '@busline/core';
import { runConformance } from '@busline/conformance';
import { adapter } from '../src/index.js';
import { admin } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

const skip = process.env.BUSLINE_BROKERS === 'none';
const usePrivate = process.env.BUSLINE_NATS_PRIVATE === '1';

// The suite's streams get a prefix of this run, so they can be deleted afterwards on a shared server.
const streamPrefix = `BLC${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}_`;

describe.skipIf(skip)('nats adapter', () => {
  let server: PrivateNatsServer | undefined;
  const url = () => server?.url ?? process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
  if (usePrivate) {
    beforeAll(async () => {
      server = await PrivateNatsServer.start('conformance');
    }, 60_000);
  }
  afterAll(async () => {
    if (server) {
      await server.stop();
      return;
    }
    const a = await admin(url());
    await a.deleteStreams(streamPrefix);
    await a.close();
  }, 60_000);
  runConformance({
    name: 'nats',
    createBus: (overrides) => createEventBus({ type: 'nats', url: url(), nats: { streamPrefix }, ...overrides } as never, { adapter }),
    hooks: usePrivate ? { restartBroker: () => server!.restart() } : {},
  });
});
