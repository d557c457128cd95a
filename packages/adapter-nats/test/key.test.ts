/**
 * `WireMessage.key` on NATS, which has no key field: a key the envelope's
 * subject does not already carry travels in a header of its own
 * (`busline-key`), taken off again on delivery, so a message published with
 * `publishWire(topic, { key, ... })` arrives with that key and core orders by
 * it. The normal publish path (key = the aggregate id = `ce-subject`) sends
 * nothing extra. Persistent and ephemeral, fast path and fallback.
 */
import { describe, expect, it } from 'vitest';
import { Collector, deferred, uniqueName, waitFor } from '@busline/conformance';
import type { WireMessage } from '@busline/core';
import { sharedServerFixture, PATHS, SHARED_URL, SKIP, streamOf, topicName, usePath } from './helpers.js';

const body = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe.skipIf(SKIP).each(PATHS)('nats: WireMessage.key ($label)', ({ internals }) => {
  usePath(internals);
  const f = sharedServerFixture();
  const { buses } = f;

  for (const persistence of ['persistent', 'ephemeral'] as const) {
    it(`${persistence}: a wire message's own key arrives as its key; the envelope's subject is the key otherwise`, async () => {
      const topic = topicName(`key-${persistence}`);
      const bus = await buses.make(SHARED_URL, { topics: { [topic]: { persistence } } });
      const got = new Collector<WireMessage>();
      await bus.subscribeWire(topic, async (m) => void got.add(text(m.body), m), { group: uniqueName('g') });
      await bus.publishWire(topic, { key: 'k1', headers: { 'x-a': 'b' }, body: body('own key') });
      await bus.publishWire(topic, { key: 'k2', headers: { 'ce-subject': 'k2' }, body: body('key = subject') });
      await bus.publishWire(topic, { key: 'k3', headers: { 'ce-subject': 'agg-7' }, body: body('key != subject') });
      await bus.publishWire(topic, { headers: { 'ce-subject': 'agg-8' }, body: body('no key') });
      await got.waitForCount(4, 10_000);
      const byBody = (b: string) => got.items.get(b)!;
      expect(byBody('own key').key).toBe('k1');
      expect(byBody('own key').headers['x-a']).toBe('b');
      expect(Object.keys(byBody('own key').headers), 'the key header is not handed on as a user header').not.toContain('busline-key');
      expect(byBody('key = subject').key).toBe('k2');
      expect(byBody('key != subject').key).toBe('k3');
      expect(byBody('key != subject').headers['ce-subject']).toBe('agg-7');
      expect(byBody('no key').key).toBe('agg-8');
    });
  }

  it('stored headers: the key header only where the key differs from the subject; nothing extra on the normal publish path', async () => {
    const topic = topicName('key-stored');
    const bus = await buses.make(SHARED_URL);
    await bus.publish(topic, { n: 1 }, { aggregateId: 'agg-1' });
    await bus.publishWire(topic, { key: 'k2', headers: { 'ce-subject': 'k2' }, body: body('x') });
    await bus.publishWire(topic, { key: 'k3', headers: {}, body: body('y') });
    const stream = streamOf(topic);
    const stored = await Promise.all([1, 2, 3].map((seq) => f.admin.jsm.streams.getMessage(stream, { seq })));
    expect(stored.map((m) => m!.header.get('busline-key'))).toEqual(['', '', 'k3']);
  });

  it("a delivered message's headers republished with an id of their own are stored, not deduped by the stored Nats-Msg-Id they carry", async () => {
    const topic = topicName('key-republish');
    const bus = await buses.make(SHARED_URL);
    const got = new Collector<WireMessage>();
    await bus.subscribeWire(topic, async (m) => void got.add(m.headers['ce-id'] ?? '', m), { group: uniqueName('g') });
    const { id } = await bus.publish(topic, { n: 1 });
    await got.waitForIds([id], 10_000);
    const delivered = got.items.get(id)!;
    expect(delivered.headers['Nats-Msg-Id'], 'delivered headers include the stored id').toBe(id);
    // What core does for a dead-letter copy per group: the same headers, a new ce-id.
    await bus.publishWire(topic, { headers: { ...delivered.headers, 'ce-id': 'copy-1' }, body: delivered.body });
    await got.waitForIds(['copy-1'], 10_000, 'the copy, stored');
    expect(await f.admin.count(streamOf(topic))).toBe(2);
  });

  it('core orders by the wire key: a second message of key k1 waits for the first; another key does not', async () => {
    const topic = topicName('key-order');
    const bus = await buses.make(SHARED_URL);
    const events: string[] = [];
    const release = deferred();
    await bus.subscribeWire(
      topic,
      async (m) => {
        const name = text(m.body);
        events.push(`start ${name}`);
        if (name === 'a1') await release.promise;
        events.push(`end ${name}`);
      },
      { group: uniqueName('g'), concurrency: 4 },
    );
    await bus.publishWire(topic, { key: 'k1', headers: {}, body: body('a1') });
    await bus.publishWire(topic, { key: 'k1', headers: {}, body: body('a2') });
    await bus.publishWire(topic, { key: 'k2', headers: {}, body: body('b1') });
    // b1 (another key) runs while a1 is held; then a2 must still be waiting behind a1.
    await waitFor(() => events.includes('end b1'), { timeoutMs: 10_000, message: 'the other key to be handled while a1 is held' });
    expect(events, 'a2 waits for a1 (same key)').not.toContain('start a2');
    release.resolve();
    await waitFor(() => events.includes('end a2'), { timeoutMs: 10_000, message: 'a2 after a1' });
    expect(events.indexOf('start a2')).toBeGreaterThan(events.indexOf('end a1'));
  });
});
