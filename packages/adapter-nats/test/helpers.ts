/** Shared pieces of the adapter tests: buses on a given server, an admin connection, reading a stream back. */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { createEventBus, type BusConfigInput, type EventBus } from '@busline/core';
import { uniqueName, waitFor } from '@busline/conformance';
import { adapter, streamNameFor, type NatsConfigInput, type NatsDriver } from '../src/index.js';
import { setClientInternals } from '../src/wire.js';
import { PINNING_SERVER, serverSupported } from '../src/server-version.js';

export const SKIP = process.env.BUSLINE_BROKERS === 'none';
export const SHARED_URL = process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222';

/**
 * The two ways the adapter talks to the client: the fast path (client
 * internals) and the public-API fallbacks. Tests that matter for both run
 * once per path.
 */
export const PATHS = [
  { label: 'fast path', internals: true },
  { label: 'public-API fallback', internals: false },
] as const;

/** In a describe block: buses made in it use `internals` (true: fast path, false: the fallbacks). */
export function usePath(internals: boolean): void {
  beforeAll(() => setClientInternals(internals));
  afterAll(() => setClientInternals(true));
}

/**
 * Records the subject of every `publish()` the driver makes on its connection
 * from now on. The fast path publishes persistent messages and acks without
 * it (one buffer through the protocol writer); the fallbacks use it for each.
 */
export function watchPublishCalls(driver: NatsDriver): string[] {
  const subjects: string[] = [];
  onPublishCall(driver, (subject) => subjects.push(subject));
  return subjects;
}

/** Calls `listener` with the subject and payload of every `publish()` the driver makes on its connection from now on. */
export function onPublishCall(driver: NatsDriver, listener: (subject: string, payload: unknown) => void): void {
  const nc = driver.connection;
  if (!nc) throw new Error('the driver is not connected');
  const publish = nc.publish.bind(nc);
  nc.publish = (subject, payload, ...rest) => {
    listener(subject, payload);
    publish(subject, payload, ...rest);
  };
}

/** Topics this test process made: cleanup deletes exactly their streams, never another run's. */
const madeTopics = new Set<string>();

export function topicName(label: string): string {
  const topic = uniqueName(label);
  madeTopics.add(topic);
  return topic;
}

export function streamOf(topic: string): string {
  return streamNameFor(topic, 'BL_');
}

/** Buses made by a test; `closeAll` in afterEach. */
export class Buses {
  private readonly open = new Set<EventBus>();
  readonly errors: { error: Error; context: string }[] = [];

  async make(url: string, config: Partial<BusConfigInput> & { nats?: NatsConfigInput } = {}, start = true): Promise<EventBus> {
    const bus = await createEventBus({ url, group: uniqueName('g'), ...config } as BusConfigInput, { adapter });
    bus.on('error', (error: Error, context: string) => this.errors.push({ error, context }));
    this.open.add(bus);
    if (start) await bus.start();
    return bus;
  }

  async close(bus: EventBus): Promise<void> {
    this.open.delete(bus);
    await bus.close({ timeoutMs: 10_000 });
  }

  async closeAll(): Promise<void> {
    const buses = [...this.open];
    this.open.clear();
    await Promise.allSettled(buses.map((b) => b.close({ timeoutMs: 10_000 })));
  }
}

/**
 * What a describe block on the shared server needs: buses and drivers closed
 * after each test, an admin connection, and at the end the streams of the
 * topics this process made deleted (only those: other runs share the server).
 */
export function sharedServerFixture() {
  const buses = new Buses();
  const drivers: { close(): Promise<void> }[] = [];
  let a: Admin | undefined;
  beforeAll(async () => {
    a = await admin(SHARED_URL);
  });
  afterEach(async () => {
    await buses.closeAll();
    await Promise.allSettled(drivers.splice(0).map((d) => d.close()));
  });
  afterAll(async () => {
    await a?.deleteMadeStreams();
    await a?.close();
  });
  return {
    buses,
    drivers,
    get admin(): Admin {
      return a!;
    },
  };
}

/**
 * What a describe block on servers of its own needs (tests that stop, kill or
 * restart them): the servers started before its tests, with an admin
 * connection; buses closed after each test; admin and servers stopped at the
 * end. `ready` waits for what the block needs beyond a listening server.
 */
export function ownServerFixture<S extends { url: string; stop(): Promise<void> }>(start: () => Promise<S>, ready?: (admin: Admin) => Promise<void>) {
  const buses = new Buses();
  let server: S | undefined;
  let a: Admin | undefined;
  beforeAll(async () => {
    server = await start();
    a = await admin(server.url);
    await ready?.(a);
  }, 90_000);
  afterEach(() => buses.closeAll());
  afterAll(async () => {
    await a?.close();
    await server?.stop();
  }, 60_000);
  return {
    buses,
    get server(): S {
      return server!;
    },
    get admin(): Admin {
      return a!;
    },
  };
}

/**
 * Resolves once the cluster places an R3 stream. JetStream answers as soon as
 * a meta leader is elected, but creating an R3 stream is refused with "no
 * suitable peers for placement" until all three servers have joined the meta
 * group (it failed that way in a CI run on the minimum server version).
 */
export async function waitForR3Placement(jsm: JetStreamManager): Promise<void> {
  const name = `BL_PROBE_${uniqueName('r3').replace(/[^A-Za-z0-9_-]/g, '_')}`;
  await waitFor(
    async () => {
      try {
        await jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: 3 });
        await jsm.streams.delete(name);
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 60_000, intervalMs: 250, message: 'the JetStream cluster to place an R3 stream (all three servers in its meta group)' },
  );
}

export interface Admin {
  nc: NatsConnection;
  jsm: JetStreamManager;
  close(): Promise<void>;
  /** Messages stored in a stream now. */
  count(stream: string): Promise<number>;
  /** Stream info, retried while the admin connection reconnects (after a server restart or a node kill). */
  info(stream: string): Promise<StreamInfo>;
  /** The Nats-Msg-Id of every stored message, in stream order. */
  storedIds(stream: string): Promise<string[]>;
  /** Deletes streams whose names start with `prefix` (a prefix unique to this run). */
  deleteStreams(prefix: string): Promise<void>;
  /** Deletes the streams of the topics `topicName` made in this process. */
  deleteMadeStreams(): Promise<void>;
}

/**
 * Retries `run` while the admin connection is (re)connecting: the NATS client
 * drops requests written while disconnected, so after a server restart the
 * first ones may time out.
 */
async function retrying<T>(nc: NatsConnection, run: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await nc.flush();
      return await run();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
  }
}

/** The version of the nats-server at `url`, as it announces itself. */
export async function serverVersion(url: string): Promise<string> {
  const nc = await connect({ servers: url.replace(/^nats:\/\//, '').split(','), name: 'test-version' });
  try {
    return nc.info?.version ?? '';
  } finally {
    await nc.close();
  }
}

/** Whether the server at `url` pins consumers (≥ 2.11): partitioned groups and key affinity need it. */
export async function serverPins(url: string): Promise<boolean> {
  return serverSupported(await serverVersion(url), PINNING_SERVER);
}

export async function admin(url: string): Promise<Admin> {
  const nc = await connect({ servers: url.replace(/^nats:\/\//, '').split(','), name: 'test-admin', maxReconnectAttempts: -1, reconnectTimeWait: 100, timeout: 5_000 });
  const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
  return {
    nc,
    jsm,
    close: () => nc.close(),
    count: (stream) => retrying(nc, async () => (await jsm.streams.info(stream)).state.messages),
    info: (stream) => retrying(nc, () => jsm.streams.info(stream)),
    async storedIds(stream) {
      const info = await retrying(nc, () => jsm.streams.info(stream));
      const total = info.state.messages;
      if (total === 0) return [];
      return retrying(nc, async () => {
        const ids: string[] = [];
        const consumer = await jetstream(nc).consumers.get(stream);
        const messages = await consumer.consume({ max_messages: 1_000 });
        for await (const m of messages) {
          ids.push(m.headers?.get('Nats-Msg-Id') ?? '');
          if (m.info.pending === 0) break;
        }
        return ids;
      });
    },
    async deleteStreams(prefix) {
      for await (const s of jsm.streams.list()) if (s.config.name.startsWith(prefix)) await jsm.streams.delete(s.config.name).catch(() => undefined);
    },
    async deleteMadeStreams() {
      for (const topic of madeTopics) {
        await jsm.streams.delete(streamOf(topic)).catch(() => undefined);
        await jsm.streams.delete(streamOf(`${topic}.dlq`)).catch(() => undefined);
      }
    },
  };
}
