/**
 * Guard for the NATS client internals the fast paths use (README, "Client
 * internals"). The adapter falls back to the public client API when they are
 * missing, silently and several times slower, so a client upgrade that removes
 * or changes them must fail here instead: each check names what changed.
 * The fallbacks themselves are tested by the files that run once per path.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { AckPolicy } from '@nats-io/jetstream';
import { Collector, deferred, uniqueName, waitFor } from '@busline/conformance';
import { NO_DRIVER_HOOKS } from '@busline/core';
import { NatsDriver, natsConfigSchema } from '../src/index.js';
import { decodeHeaders, HeaderReader } from '../src/header-reader.js';
import { encodeHeaders, headerBlockSize, parseAckBytes, protocolWriter, replyBytes, setClientInternals, writeHeaderBlock } from '../src/wire.js';
import { admin, Buses, SHARED_URL, SKIP, streamOf, watchPublishCalls, type Admin } from './helpers.js';

const PINNED = '@nats-io/nats-core 3.4.0 (see package.json)';
const te = new TextEncoder();
const td = new TextDecoder();

interface MsgInternals {
  _msg?: { hdr?: unknown; reply?: unknown; subject?: unknown };
  _rdata?: unknown;
}

function internalsOf(msg: Msg): MsgInternals {
  return msg as unknown as MsgInternals;
}

/** decodeHeaders / replyBytes through the public API, for comparison with the fast path. */
function viaPublicApi<T>(run: () => T): T {
  setClientInternals(false);
  try {
    return run();
  } finally {
    setClientInternals(true);
  }
}

/** Messages arriving on `subject`, collected until `count` arrived. */
function collect(nc: NatsConnection, subject: string, count: number): { sub: Subscription; done: Promise<Msg[]> } {
  const got: Msg[] = [];
  const all = deferred<Msg[]>();
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      got.push(m);
      if (got.length === count) all.resolve(got);
    },
  });
  return { sub, done: all.promise };
}

/** The received-message internals: present, and meaning what the fast path assumes. */
function expectMessageInternals(msg: Msg, what: string): void {
  const internals = internalsOf(msg);
  const why = `${what}: the client's Msg no longer has the internals the adapter reads (${PINNED})`;
  expect(typeof internals._msg, `${why}: _msg`).toBe('object');
  expect(typeof internals._msg!.hdr, `${why}: _msg.hdr`).toBe('number');
  expect(internals._rdata, `${why}: _rdata`).toBeInstanceOf(Uint8Array);
  expect(internals._msg!.subject, `${why}: _msg.subject`).toBeInstanceOf(Uint8Array);
  expect(td.decode(internals._msg!.subject as Uint8Array), `${why}: _msg.subject is the subject's bytes`).toBe(msg.subject);
  const hdr = internals._msg!.hdr as number;
  if (msg.headers) {
    expect(hdr, `${why}: _msg.hdr is the length of the header block`).toBeGreaterThan(0);
    expect(td.decode((internals._rdata as Uint8Array).subarray(0, hdr)), `${why}: _rdata starts with the header block`).toMatch(/^NATS\/1\.0/);
  } else expect(hdr, `${why}: _msg.hdr is -1 without headers`).toBe(-1);
  if (msg.reply) {
    expect(internals._msg!.reply, `${why}: _msg.reply`).toBeInstanceOf(Uint8Array);
    expect(td.decode(internals._msg!.reply as Uint8Array), `${why}: _msg.reply is the reply subject's bytes`).toBe(msg.reply);
  }
  // What the adapter reads through them equals what the public API says.
  expect(decodeHeaders(msg), `${what}: headers read from the internals differ from msg.headers`).toEqual(viaPublicApi(() => decodeHeaders(msg)));
  if (!msg.headers || msg.headers.code === 0) {
    expect(new HeaderReader().read(msg), `${what}: HeaderReader differs from msg.headers`).toEqual(viaPublicApi(() => decodeHeaders(msg)).headers);
  }
  const fast = replyBytes(msg);
  const slow = viaPublicApi(() => replyBytes(msg));
  expect(fast && td.decode(fast), `${what}: reply read from the internals differs from msg.reply`).toBe(slow && td.decode(slow));
}

describe.skipIf(SKIP)('nats client internals the fast paths rely on', () => {
  let driver: NatsDriver;
  let nc: NatsConnection;
  let a: Admin;
  const buses = new Buses();
  const streams: string[] = [];

  beforeAll(async () => {
    setClientInternals(true);
    // The connection as the driver makes it (same options).
    driver = new NatsDriver(natsConfigSchema.parse({ servers: [SHARED_URL] }));
    await driver.connect({ hooks: NO_DRIVER_HOOKS, plannedConsumers: [] });
    nc = driver.connection!;
    a = await admin(SHARED_URL);
  });
  afterEach(() => buses.closeAll());
  afterAll(async () => {
    for (const stream of streams) await a?.jsm.streams.delete(stream).catch(() => undefined);
    await a?.close();
    await driver?.close();
  });

  it('protocolWriter(nc): sendCommand writes raw protocol; outMsgs/outBytes are the counters nc.stats() reports', async () => {
    const writer = protocolWriter(nc);
    expect(writer, `nc.protocol.sendCommand / outMsgs / outBytes are gone from the client (${PINNED}); publishing and acks would fall back to publish() per message`).toBeDefined();
    const subject = uniqueName('internals.raw');
    const { sub, done } = collect(nc, subject, 2);
    await nc.flush();
    const headers = { 'ce-id': 'e-1', 'x-note': 'héllo' };
    const hlen = headerBlockSize(headers, 'm-1');
    const body = te.encode('payload');
    const plain = te.encode(`PUB ${subject} 5\r\nhello\r\n`);
    const head = te.encode(`HPUB ${subject} reply.to.me ${hlen} ${hlen + body.length}\r\n`);
    const buf = Buffer.alloc(plain.length + head.length + hlen + body.length + 2);
    buf.set(plain, 0);
    buf.set(head, plain.length);
    let off = writeHeaderBlock(buf, plain.length + head.length, headers, 'm-1');
    buf.set(body, off);
    off += body.length;
    buf.set([13, 10], off);
    const before = nc.stats();
    writer!.sendCommand(buf);
    writer!.outMsgs += 2;
    writer!.outBytes += buf.length;
    expect(nc.stats().outMsgs - before.outMsgs, 'outMsgs is the counter nc.stats() reports').toBe(2);
    expect(nc.stats().outBytes - before.outBytes, 'outBytes is the counter nc.stats() reports').toBe(buf.length);
    const [first, second] = await done;
    sub.unsubscribe();
    expect(first!.string()).toBe('hello');
    expect(second!.string()).toBe('payload');
    expect(second!.reply).toBe('reply.to.me');
    expect(second!.headers?.get('x-note')).toBe('héllo');
    expect(second!.headers?.get('Nats-Msg-Id')).toBe('m-1');
    expectMessageInternals(first!, 'a message without headers or reply');
    expectMessageInternals(second!, 'a message with headers and a reply');
  });

  it('JetStream messages and status messages carry _msg.reply / _msg.hdr / _rdata as the pull loop reads them', async () => {
    const stream = uniqueName('BL_internals').replace(/[^A-Za-z0-9_-]/g, '_');
    const subject = uniqueName('internals.js');
    streams.push(stream);
    await a.jsm.streams.add({ name: stream, subjects: [subject] });
    await a.jsm.consumers.add(stream, { durable_name: 'guard', ack_policy: AckPolicy.Explicit });
    const pub = await a.nc.request(subject, 'one', { timeout: 5_000 });
    expect(pub.string()).toMatch(/"seq":1/);
    const inbox = uniqueName('_INBOX.guard');
    // batch 2 with one message stored: the message, then a 408 (request expired, 1 not delivered).
    const { sub, done } = collect(nc, inbox, 2);
    nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.guard`, JSON.stringify({ batch: 2, expires: 300_000_000 }), { reply: inbox });
    const [message, status] = await done;
    sub.unsubscribe();
    expectMessageInternals(message!, 'a JetStream message');
    const reply = replyBytes(message!);
    expect(reply && parseAckBytes(reply)?.streamSeq, 'the ack subject read from _msg.reply').toBe(1);
    expectMessageInternals(status!, 'a pull status message');
    expect(replyBytes(status!), 'a status message has no reply').toBeUndefined();
    expect(decodeHeaders(status!).code).toBe(408);
  });

  it('subscriptions expose protocol.unsub and protocol.subscriptions.cancel (stopping a pull loop without losing messages)', () => {
    const sub = nc.subscribe(uniqueName('internals.sub'));
    const protocol = (sub as unknown as { protocol?: { unsub?: unknown; subscriptions?: { cancel?: unknown } } }).protocol;
    sub.unsubscribe();
    expect(typeof protocol?.unsub, `Subscription.protocol.unsub is gone (${PINNED}); stop() would fall back to drain()`).toBe('function');
    expect(typeof protocol?.subscriptions?.cancel, `Subscription.protocol.subscriptions.cancel is gone (${PINNED})`).toBe('function');
  });

  it('publish() accepts the pre-encoded header object (only encode() is called on it)', async () => {
    const subject = uniqueName('internals.hdrs');
    const { sub, done } = collect(nc, subject, 1);
    await nc.flush();
    const headers = encodeHeaders({ 'ce-id': 'e-2', 'x-a': 'b' }, 'm-2');
    expect(typeof headers).not.toBe('string');
    nc.publish(subject, 'x', { headers: headers as Exclude<typeof headers, string> });
    const [msg] = await done;
    sub.unsubscribe();
    expect(msg!.headers?.get('x-a'), `publish() no longer takes the adapter's pre-encoded headers (${PINNED}); ephemeral publishing is affected`).toBe('b');
    expect(msg!.headers?.get('Nats-Msg-Id')).toBe('m-2');
  });

  it('a bus really takes the fast path: no publish() per message or per ack', async () => {
    const group = uniqueName('g');
    const bus = await buses.make(SHARED_URL, { group });
    const calls = watchPublishCalls(bus.driver as NatsDriver);
    const topic = uniqueName('internals-bus');
    const stream = streamOf(topic);
    streams.push(stream);
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const { ids } = await bus.publishBatch(topic, Array.from({ length: 50 }, (_, i) => ({ payload: { i } })));
    await got.waitForIds(ids, 10_000);
    await waitFor(async () => (await a.jsm.consumers.info(stream, group)).num_ack_pending === 0, {
      timeoutMs: 10_000,
      intervalMs: 50,
      message: 'every message acknowledged',
    });
    expect(calls.filter((s) => s === topic), 'messages published with publish() instead of the protocol writer').toEqual([]);
    expect(calls.filter((s) => s.startsWith('$JS.ACK.')), 'acks published with publish() instead of the protocol writer').toEqual([]);
  });
});
