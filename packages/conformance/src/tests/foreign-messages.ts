/**
 * Foreign messages: records written by producers that know nothing of busline
 * (no CloudEvents headers; plain text, JSON or bytes; with or without a key).
 * A `{ foreign: true }` subscription handles them with an envelope from the
 * broker's metadata; a default subscription dead-letters them as malformed.
 */
import { Buffer } from 'node:buffer';
import type { Envelope, WireMessage } from '@busline/core';
import { expect } from '../expect.js';
import type { Harness } from '../harness.js';
import { Collector, readDeadLetters } from '../helpers.js';

const text = (s: string) => Buffer.from(s, 'utf8');

export function registerForeignMessageTests(h: Harness): void {
  h.test('{ foreign: true } handles records without an envelope (id, key, time, type from the broker); a default subscriber dead-letters them', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('foreign');
    const dead = await readDeadLetters(h, bus, `${topic}.dlq`);
    const foreign = new Collector<Envelope>();
    const strict = new Collector<Envelope>();
    // Keyed by payload: the ids are the broker's, which the test cannot know in advance.
    const label = (e: Envelope) => (e.payload instanceof Uint8Array ? `bytes:${Buffer.from(e.payload).toString('hex')}` : JSON.stringify(e.payload));
    await bus.subscribeEnvelope(topic, (e) => void foreign.add(label(e), e), { group: h.group('foreign'), foreign: true });
    await bus.subscribeEnvelope(topic, (e) => void strict.add(label(e), e), { group: h.group('strict') });
    const before = bus.metrics();

    const records: WireMessage[] = [
      { headers: {}, body: text('plain text, no key') },
      { key: 'acct-1', headers: { 'x-producer': 'legacy' }, body: text('{"legacy":true,"n":1}') },
      { key: 'acct-1', headers: {}, body: Uint8Array.from([0xff, 0x00, 0xfe]) },
    ];
    const sentAt = Date.now();
    for (const record of records) await bus.publishWire(topic, record);
    // A busline event on the same topic: the foreign subscriber decodes it as usual.
    const own = await bus.publish(topic, { own: true }, { aggregateId: 'acct-1' });

    await foreign.waitForCount(4, h.ms(20_000), 'the foreign records and the busline event');
    const plain = foreign.items.get('"plain text, no key"')!;
    const json = foreign.items.get('{"legacy":true,"n":1}')!;
    const bytes = foreign.items.get('bytes:ff00fe')!;
    expect(plain, 'text that is not JSON is a string').toMatchObject({ type: topic, source: topic, version: 1, aggregateId: undefined });
    expect(json, 'JSON text is the JSON value; the key is the aggregate id').toMatchObject({ type: topic, aggregateId: 'acct-1', headers: { 'x-producer': 'legacy' } });
    expect(bytes.payload, 'bytes that are not UTF-8 stay bytes').toBeInstanceOf(Uint8Array);
    const ids = [plain, json, bytes].map((e) => e.id);
    expect(new Set(ids).size, 'an id per record').toBe(3);
    for (const e of [plain, json, bytes]) {
      expect(e.id).toMatch(/\S/);
      expect(e.time, 'the broker timestamp').toBeInstanceOf(Date);
      expect(Math.abs(e.time!.getTime() - sentAt), 'broker time is about when it was written').toBeLessThan(h.ms(60_000));
    }
    expect(foreign.items.get('{"own":true}')!.id, 'busline events decode as usual').toBe(own.id);

    await strict.waitForIds(['{"own":true}'], h.ms(20_000), 'the busline event, by the default subscriber');
    await dead.waitForCount(records.length, h.ms(20_000), 'the foreign records, dead-lettered by the default subscriber');
    expect([...dead.items.values()].map((m) => Buffer.from(m.body).toString('hex')).sort()).toEqual(records.map((r) => Buffer.from(r.body).toString('hex')).sort());
    expect(strict.size, 'the default subscriber handled only the busline event').toBe(1);
    expect(bus.metrics().malformed - before.malformed).toBe(records.length);
  });
}
