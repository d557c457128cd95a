/** Config parsing, URL shorthand, names, and credentials that never show up in output or errors. */
import { inspect } from 'node:util';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createEventBus, type BuslineError } from '@busline/core';
import { adapter, durableNameFor, natsConfigSchema, NatsDriver, sectionFromUrlString, streamNameFor } from '../src/index.js';
import { connectionOptions } from '../src/connection.js';

const SECRET = 's3cr3t-pa55';
const TOKEN = 't0k3n-xyz';

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
    });
  });
}

describe('nats config', () => {
  it('turns URLs into servers and credentials (comma-separated hosts, user:pass, token)', () => {
    expect(sectionFromUrlString('nats://127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'] });
    expect(sectionFromUrlString('nats://a:4222,b:4223,c')).toEqual({ servers: ['nats://a:4222', 'nats://b:4223', 'nats://c'] });
    expect(sectionFromUrlString(`nats://alice:${encodeURIComponent('p@ss:w/rd')}@h1:4222,h2:4222`)).toEqual({
      servers: ['nats://h1:4222', 'nats://h2:4222'],
      user: 'alice',
      pass: 'p@ss:w/rd',
    });
    expect(sectionFromUrlString(`nats://${TOKEN}@h:4222`)).toEqual({ servers: ['nats://h:4222'], token: TOKEN });
    expect(sectionFromUrlString('tls://h:4443')).toEqual({ servers: ['tls://h:4443'], tls: {} });
    expect(adapter.sectionFromUrl('nats://u:p@h:1')).toEqual({ servers: ['nats://h:1'], user: 'u', pass: 'p' });
  });

  it('has defaults, rejects unknown and conflicting fields, and describes every field', () => {
    const c = natsConfigSchema.parse({});
    expect(c).toMatchObject({ servers: ['nats://127.0.0.1:4222'], publishWindow: 2048, pullBatch: 500, ackMode: 'explicit', streamMode: 'perTopic', storage: 'file' });
    expect(natsConfigSchema.safeParse({ nope: 1 }).success).toBe(false);
    expect(natsConfigSchema.safeParse({ user: 'u', token: 't' }).success).toBe(false);
    expect(natsConfigSchema.safeParse({ pullExpiresMs: 1_000, idleHeartbeatMs: 900 }).success).toBe(false);
    const fields = natsConfigSchema.shape as Record<string, { description?: string }>;
    expect(Object.keys(fields).length).toBeGreaterThan(20);
    for (const [name, field] of Object.entries(fields)) expect(field.description, `${name} is described`).toBeTruthy();
  });

  it('derives stream and durable names that are valid and do not collide', () => {
    expect(streamNameFor('orders', 'BL_')).toBe('BL_orders');
    expect(streamNameFor('orders-eu', 'BL_')).toBe('BL_orders-eu');
    const dotted = streamNameFor('orders.created', 'BL_');
    const underscored = streamNameFor('orders_created', 'BL_');
    expect(dotted).toMatch(/^BL_orders_created_[0-9a-f]{8}$/);
    expect(dotted).not.toBe(underscored);
    expect(streamNameFor('t'.repeat(200), 'BL_').length).toBeLessThanOrEqual(203);
    for (const name of [dotted, underscored, streamNameFor('a.b.c', 'BL_')]) expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(durableNameFor('billing', 'orders.created', false)).toBe('billing');
    const shared = durableNameFor('billing', 'orders.created', true);
    expect(shared).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(shared).not.toBe(durableNameFor('billing', 'orders_created', true));
  });

  it('never shows credentials: driver inspect/JSON, connect errors, config errors', async () => {
    const port = await closedPort();
    const bus = await createEventBus({ url: `nats://alice:${SECRET}@127.0.0.1:${port}`, nats: { connectTimeoutMs: 2_000 } }, { adapter });
    const driver = bus.driver as NatsDriver;
    expect(inspect(driver, { depth: 10, showHidden: true })).not.toContain(SECRET);
    expect(JSON.stringify(driver)).not.toContain(SECRET);
    expect(driver.servers).toEqual([`nats://127.0.0.1:${port}`]);
    const error = await bus.start().then(
      () => undefined,
      (e: unknown) => e as BuslineError,
    );
    expect(error?.code).toBe('BROKER_UNAVAILABLE');
    expect(error?.message).toContain(`127.0.0.1:${port}`);
    for (const text of [error?.message, error?.stack, inspect(error, { depth: 10 }), JSON.stringify(error)]) expect(text).not.toContain(SECRET);

    const tokenBus = await createEventBus({ url: `nats://127.0.0.1:${port}`, nats: { token: TOKEN, connectTimeoutMs: 2_000 } }, { adapter });
    const tokenError = await tokenBus.start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(inspect(tokenError, { depth: 10 })).not.toContain(TOKEN);
    expect(inspect(tokenBus.driver, { depth: 10 })).not.toContain(TOKEN);

    const configError = await createEventBus({ url: `nats://alice:${SECRET}@127.0.0.1:4222`, nats: { publishWindow: -1 } }, { adapter }).then(
      () => undefined,
      (e: unknown) => e as BuslineError,
    );
    expect(configError?.code).toBe('CONFIG_INVALID');
    expect(configError?.message).toContain('publishWindow');
    expect(configError?.message).not.toContain(SECRET);
  });

  it('declares its capabilities', () => {
    const driver = new NatsDriver(natsConfigSchema.parse({}));
    expect(driver.capabilities).toEqual({
      persistent: true,
      survivesBrokerRestart: true,
      ephemeral: true,
      perKeyOrder: true,
      keyAffinity: false,
      consumerGroups: true,
      nativeRedeliveryDelay: true,
      dedupe: true,
      exactlyOnce: false,
      subscribeAfterStartRestartsConsumer: false,
      atomicBatch: false,
      redeliveryLimit: false,
    });
  });

  it('tls://host:port is accepted by createEventBus and asks the client for TLS', async () => {
    const bus = await createEventBus({ url: 'tls://127.0.0.1:4443', nats: { connectTimeoutMs: 1_000 } }, { adapter });
    expect((bus.driver as NatsDriver).servers).toEqual(['tls://127.0.0.1:4443']);
    expect(connectionOptions(natsConfigSchema.parse(adapter.sectionFromUrl('tls://u:p@h:4443'))).tls).toEqual({});
    // A tls:// server in the section asks for TLS as well; the tls option's files still go through.
    expect(connectionOptions(natsConfigSchema.parse({ servers: ['tls://h:4443'] })).tls).toEqual({});
    expect(connectionOptions(natsConfigSchema.parse({ servers: ['tls://h:4443'], tls: { caFile: '/ca.pem' } })).tls).toEqual({ caFile: '/ca.pem' });
    expect(connectionOptions(natsConfigSchema.parse({ servers: ['nats://h:4222'] })).tls).toBeUndefined();
    await bus.close();
  });

  it('a port out of range or a foreign scheme is CONFIG_INVALID (not a retryable broker error), credentials not shown', async () => {
    const error = (await createEventBus(`nats://alice:${SECRET}@h:99999`, { adapter }).catch((e: unknown) => e)) as BuslineError;
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('nats.servers.0: server h: port "99999" is not a number from 1 to 65535');
    expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(SECRET);
    const section = natsConfigSchema.safeParse({ servers: ['http://h:80', 'h:0', 'h:4222', '[::1]:4222', 'nats://h'] });
    expect(section.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'servers.0: server h: scheme "http://" is not nats:// or tls://',
      'servers.1: server h: port "0" is not a number from 1 to 65535',
    ]);
  });
});
