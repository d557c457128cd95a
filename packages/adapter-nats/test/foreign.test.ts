/**
 * Foreign messages on NATS: what a `nats pub` (no headers, no key) leaves in
 * a stream reaches a `{ foreign: true }` subscriber with its id from the stream
 * sequence and its time from the JetStream timestamp in the ack subject.
 */
import { describe, expect, it } from 'vitest';
import { Collector, uniqueName } from '@busline/conformance';
import type { Envelope } from '@busline/core';
import { ackTimestampMs } from '../src/wire.js';
import { sharedServerFixture, SHARED_URL, SKIP, topicName } from './helpers.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('nats: the stream timestamp of an ack subject', () => {
  it('reads the <ts> token (ns) of both ack subject forms, and nothing from anything else', () => {
    const ns = '1700000000123456789';
    expect(ackTimestampMs(bytes(`$JS.ACK.S.C.1.42.40.${ns}.0`))).toBe(1_700_000_000_123);
    expect(ackTimestampMs(bytes(`$JS.ACK.dom.acchash.S.C.1.42.40.${ns}.0.r4nd`))).toBe(1_700_000_000_123);
    expect(ackTimestampMs(bytes('$JS.ACK.S.C.1.42'))).toBeUndefined();
    expect(ackTimestampMs(bytes('$JS.ACK.S.C.1.42.40.notanumber.0'))).toBeUndefined();
  });
});

describe.skipIf(SKIP)('nats: foreign messages', () => {
  const f = sharedServerFixture();

  it('a record without envelope headers is handled with the stream sequence as id and the stream time as time', async () => {
    const topic = topicName('foreign');
    const bus = await f.buses.make(SHARED_URL);
    const got = new Collector<Envelope>();
    await bus.subscribeEnvelope(topic, (e) => void got.add(e.id, e), { group: uniqueName('g'), foreign: true });
    const before = Date.now();
    await bus.publishWire(topic, { headers: {}, body: bytes('{"legacy":true}') });
    await bus.publishWire(topic, { headers: {}, body: bytes('plain text') });
    // A fresh topic's stream: sequences 1 and 2.
    await got.waitForIds([`${topic}:1`, `${topic}:2`], 20_000, 'foreign messages');
    const [first, second] = [got.items.get(`${topic}:1`)!, got.items.get(`${topic}:2`)!];
    expect(first).toMatchObject({ type: topic, payload: { legacy: true } });
    expect(second).toMatchObject({ payload: 'plain text' });
    expect(first.time!.getTime()).toBeGreaterThanOrEqual(before - 5_000);
    expect(first.time!.getTime()).toBeLessThanOrEqual(Date.now() + 5_000);
  });
});
