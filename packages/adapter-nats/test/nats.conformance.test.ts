/**
 * The shared conformance suite against a real nats-server with JetStream:
 * everything on BUSLINE_NATS_URL (the server from scripts/brokers), and the
 * broker-restart test on a server of its own that it may restart. All of it
 * runs twice: on the fast path (client internals) and on the public-API
 * fallbacks. Skipped when BUSLINE_BROKERS=none.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { createEventBus } from '@busline/core';
import { runConformance } from '@busline/conformance/vitest';
import { adapter } from '../src/index.js';
import { admin, PATHS, usePath } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

const skip = process.env.BUSLINE_BROKERS === 'none';

// The suite's streams get a prefix of this run, so they can be deleted afterwards on the shared server.
const streamPrefix = `BLC${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}_`;

describe.skipIf(skip).each(PATHS)('nats adapter on the scripted server ($label)', ({ label, internals }) => {
  usePath(internals);
  const url = process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
  afterAll(async () => {
    const a = await admin(url);
    await a.deleteStreams(streamPrefix);
    await a.close();
  }, 60_000);
  runConformance({
    name: `nats, ${label}`,
    createBus: (overrides) => createEventBus({ type: 'nats', url, nats: { streamPrefix }, ...overrides } as never, { adapter }),
    // scripts/brokers runs nats-server with max_payload 8MB.
    maxMessageBytes: 8 * 1024 * 1024,
    // Members in processes of their own (kill -9, SIGTERM), with the adapter's defaults.
    memberProcess: {
      config: { type: 'nats', url, nats: { streamPrefix } },
      adapterModule: new URL('../dist/index.js', import.meta.url).href,
    },
    // A short ack_wait, so messages held in core outlive the server's redelivery deadline within a test.
    deadline: {
      ms: 1_000,
      createBus: (overrides) => createEventBus({ type: 'nats', url, nats: { streamPrefix, ackWaitMs: 1_000 }, ...overrides } as never, { adapter }),
    },
  });
});

// The broker-restart test restarts the server, so it gets a nats-server of its own (free port, own store).
describe.skipIf(skip).each(PATHS)('nats adapter on a private server ($label)', ({ label, internals }) => {
  usePath(internals);
  let server: PrivateNatsServer | undefined;
  beforeAll(async () => {
    server = await PrivateNatsServer.start('conformance');
  }, 60_000);
  afterAll(() => server?.stop(), 60_000);
  runConformance({
    name: `nats (private server), ${label}`,
    only: /broker restart/,
    createBus: (overrides) => createEventBus({ type: 'nats', url: server!.url, ...overrides } as never, { adapter }),
    hooks: { restartBroker: () => server!.restart() },
  });
});
