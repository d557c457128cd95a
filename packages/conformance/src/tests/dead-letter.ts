/**
 * Retry exhaustion, non-retryable errors and poison messages all end on the
 * dead-letter topic with headers saying why; none of them stops the consumer
 * (Watermill TestContinueAfterErrors; Dapr's dead-letter conformance).
 */
import { expect } from '../expect.js';
import { DeadLetterHeader, ErrorCode, HTTP_BINDING, NonRetryableError, type DeadLetterEvent, type WireMessage } from '@busline/core';
import type { Harness } from '../harness.js';
import { Collector, readDeadLetters, rejection, waitFor } from '../helpers.js';

const DLQ_HEADERS = DeadLetterHeader;

export function registerDeadLetterTests(h: Harness): void {
  h.test('a handler that always fails is retried maxAttempts times, then dead-lettered with error headers', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('dlq');
    const group = h.group('dlq');
    const dead = await readDeadLetters(h, bus, `${topic}.dlq`);
    const events: DeadLetterEvent[] = [];
    bus.on('deadLetter', (e: DeadLetterEvent) => {
      if (e.topic === topic) events.push(e);
    });
    const marker = `boom-${Math.random().toString(36).slice(2)}`;
    const attempts: number[] = [];
    const handled = new Collector();
    await bus.subscribe(
      topic,
      async (payload, ctx) => {
        if ((payload as { poison?: boolean }).poison) {
          attempts.push(ctx.attempt);
          throw new Error(`${marker}: cannot handle ${ctx.envelope.id}`);
        }
        handled.add(ctx.envelope.id, null);
      },
      { group, retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 5 } },
    );
    const before = bus.metrics();
    const poison = await bus.publish(topic, { poison: true }, { aggregateId: 'acct-1', headers: { 'x-origin': 'suite' } });
    // Same key after the poison message: handled only once the poison one was settled (it must not block the key).
    const next = await bus.publish(topic, { poison: false }, { aggregateId: 'acct-1' });

    await dead.waitForIds([poison.id], h.ms(20_000), 'dead letter');
    await handled.waitForIds([next.id], h.ms(20_000), 'the message after the dead-lettered one');
    const letter = dead.items.get(poison.id)!;
    expect(letter.headers[DLQ_HEADERS.error]).toContain(marker);
    expect(letter.headers[DLQ_HEADERS.attempts]).toBe('3');
    expect(letter.headers[DLQ_HEADERS.topic]).toBe(topic);
    expect(letter.headers[DLQ_HEADERS.group]).toBe(group);
    expect(letter.headers['x-origin'], 'original headers kept').toBe('suite');
    expect(JSON.parse(Buffer.from(letter.body).toString('utf8')), 'original body kept').toEqual({ poison: true });

    expect([...new Set(attempts)].sort(), 'attempts seen').toEqual([1, 2, 3]);
    if (h.caps.perKeyOrder) expect(attempts, 'no attempt after dead-lettering').toEqual([1, 2, 3]);
    await waitFor(() => events.length >= 1, { timeoutMs: h.ms(5_000), message: "a 'deadLetter' event" });
    expect(events[0]).toMatchObject({ topic, group, deadLetterTopic: `${topic}.dlq`, attempts: 3 });
    expect(events[0]!.error).toContain(marker);
    expect(events[0]!.envelope?.id).toBe(poison.id);
    expect(bus.metrics().deadLettered - before.deadLettered).toBeGreaterThanOrEqual(1);
  });

  h.test('NonRetryableError (or any error with retryable === false) dead-letters after exactly 1 attempt, to a custom topic', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('nonretry');
    const custom = h.topic('custom-dead');
    const dead = await readDeadLetters(h, bus, custom);
    const attempts = new Map<string, number[]>();
    await bus.subscribe(
      topic,
      async (payload, ctx) => {
        attempts.set(ctx.envelope.id, [...(attempts.get(ctx.envelope.id) ?? []), ctx.attempt]);
        if ((payload as { kind: string }).kind === 'class') throw new NonRetryableError('invalid order: no lines');
        throw Object.assign(new Error('rejected by policy'), { retryable: false });
      },
      { retry: { maxAttempts: 5, initialDelayMs: 1, maxDelayMs: 5 }, deadLetter: { topic: custom } },
    );
    const a = await bus.publish(topic, { kind: 'class' }, { aggregateId: 'o-1' });
    const b = await bus.publish(topic, { kind: 'flag' }, { aggregateId: 'o-2' });
    await dead.waitForIds([a.id, b.id], h.ms(20_000), 'dead letters on the custom topic');
    expect(dead.items.get(a.id)!.headers[DLQ_HEADERS.attempts]).toBe('1');
    expect(dead.items.get(a.id)!.headers[DLQ_HEADERS.error]).toContain('invalid order: no lines');
    expect(dead.items.get(b.id)!.headers[DLQ_HEADERS.attempts]).toBe('1');
    expect(dead.items.get(b.id)!.headers[DLQ_HEADERS.topic]).toBe(topic);
    expect(attempts.get(a.id)).toEqual([1]);
    expect(attempts.get(b.id)).toEqual([1]);
  });

  h.test('deadLetter: false drops an exhausted message with a deadLetter event (no topic) and moves on', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('nodlq');
    const events: DeadLetterEvent[] = [];
    bus.on('deadLetter', (e: DeadLetterEvent) => {
      if (e.topic === topic) events.push(e);
    });
    const handled = new Collector();
    const attempts: number[] = [];
    await bus.subscribe(
      topic,
      async (payload, ctx) => {
        if ((payload as { poison?: boolean }).poison) {
          attempts.push(ctx.attempt);
          throw new Error('always fails');
        }
        handled.add(ctx.envelope.id, null);
      },
      { retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 2 }, deadLetter: false },
    );
    const poison = await bus.publish(topic, { poison: true }, { aggregateId: 'same' });
    const next = await bus.publish(topic, { poison: false }, { aggregateId: 'same' });
    await handled.waitForIds([next.id], h.ms(20_000), 'the message after the dropped one');
    await waitFor(() => events.length >= 1, { timeoutMs: h.ms(5_000), message: "a 'deadLetter' event" });
    expect(events[0]).toMatchObject({ topic, attempts: 2, deadLetterTopic: undefined });
    expect(events[0]!.envelope?.id).toBe(poison.id);
    expect([...new Set(attempts)].sort()).toEqual([1, 2]);
  });

  h.test('malformed wire messages go to the dead-letter topic without reaching the handler; the next good one is handled', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('malformed');
    const dead = await readDeadLetters(h, bus, `${topic}.dlq`);
    const events: DeadLetterEvent[] = [];
    bus.on('deadLetter', (e: DeadLetterEvent) => {
      if (e.topic === topic) events.push(e);
    });
    const calls: string[] = [];
    const handled = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => {
      calls.push(ctx.envelope.id);
      handled.add(ctx.envelope.id, null);
    });
    const now = new Date().toISOString();
    const garbage: WireMessage[] = [
      // No metadata at all, bytes that are not UTF-8.
      { key: 'acct-9', headers: {}, body: Uint8Array.from([0xff, 0xfe, 0x00, 0x80, 0x81]) },
      // Claims JSON, body is not JSON.
      {
        key: 'acct-9',
        headers: { 'ce-specversion': '1.0', 'ce-id': 'malformed-json', 'ce-type': 't', 'ce-source': 's', 'ce-time': now, 'content-type': 'application/json' },
        body: new TextEncoder().encode('{"unterminated": '),
      },
      // Metadata present but invalid: a time that is not a time, a version that is not a version.
      {
        key: 'acct-9',
        headers: { 'ce-specversion': '1.0', 'ce-id': 'malformed-meta', 'ce-type': 't', 'ce-source': 's', 'ce-time': 'yesterday-ish', 'ce-eventversion': '-3', 'content-type': 'application/json' },
        body: new TextEncoder().encode('{"ok":true}'),
      },
    ];
    const before = bus.metrics();
    for (const message of garbage) await bus.publishWire(topic, message);
    const good = await bus.publish(topic, { good: true }, { aggregateId: 'acct-9' });

    await handled.waitForIds([good.id], h.ms(20_000), 'the good message after the malformed ones');
    await dead.waitForCount(garbage.length, h.ms(20_000), 'malformed messages on the dead-letter topic');
    expect(calls, 'the handler saw only the good message').toEqual([good.id]);
    const bodies = [...dead.items.values()].map((m) => Buffer.from(m.body).toString('hex')).sort();
    expect(bodies, 'original bodies kept').toEqual(garbage.map((m) => Buffer.from(m.body).toString('hex')).sort());
    for (const letter of dead.items.values()) {
      expect(letter.headers[DLQ_HEADERS.error], 'why it was dead-lettered').toBeTruthy();
      expect(letter.headers[DLQ_HEADERS.topic]).toBe(topic);
    }
    await waitFor(() => events.length >= garbage.length, {
      timeoutMs: h.ms(5_000),
      message: () => `a 'deadLetter' event per malformed message: ${events.length} of ${garbage.length}`,
    });
    expect(bus.metrics().deadLettered - before.deadLettered).toBeGreaterThanOrEqual(garbage.length);
  });

  h.test('two groups that dead-letter the same event store two copies, one per group', { requires: ['persistent', 'consumerGroups'] }, async () => {
    const bus = await h.bus();
    const topic = h.topic('dlq-two-groups');
    const dead = await readDeadLetters(h, bus, `${topic}.dlq`, { all: true });
    const groups = [h.group('billing'), h.group('shipping')];
    for (const group of groups) {
      await bus.subscribe(topic, () => {
        throw new NonRetryableError(`${group} cannot handle it`);
      }, { group });
    }
    const { id } = await bus.publish(topic, { total: 1 });
    await dead.waitForIds(groups.map((g) => `${id}/${g}`), h.ms(20_000), 'a dead-letter copy per group');
    const copies = groups.map((g) => dead.items.get(`${id}/${g}`)!);
    const idHeader = (bus.driver.cloudEvents ?? HTTP_BINDING).headers.id;
    expect(copies[0]!.headers[idHeader], 'each copy has an id of its own').toMatch(/^dlq-/);
    expect(copies[0]!.headers[idHeader], 'each copy has an id of its own').not.toBe(copies[1]!.headers[idHeader]);
    expect(copies.map((c) => c.headers[DeadLetterHeader.error])).toEqual(groups.map((g) => `${g} cannot handle it`));
  });

  h.test(
    'a message close to the broker size limit whose dead-letter copy would be too large is still dead-lettered (without its body), and its key goes on',
    { requires: ['persistent'] },
    async () => {
      const bus = await h.bus();
      const topic = h.topic('dlq-big');
      const dead = await readDeadLetters(h, bus, `${topic}.dlq`);
      const handled = new Collector();
      await bus.subscribe(topic, (payload, ctx) => {
        if (payload instanceof Uint8Array) throw new NonRetryableError(`refused: ${'x'.repeat(2_000)}`);
        handled.add(ctx.envelope.id, null);
      });
      // Fits with the envelope's own headers, not with the dead-letter headers on top.
      const big = new Uint8Array(h.maxMessageBytes - 500).fill(7);
      const { id } = await bus.publish(topic, big, { aggregateId: 'big-key' });
      const next = await bus.publish(topic, { after: true }, { aggregateId: 'big-key' });
      await dead.waitForIds([id], h.ms(20_000), 'the dead-letter copy of the big message');
      await handled.waitForIds([next.id], h.ms(20_000), 'the next message of the key');
      const copy = dead.items.get(id)!;
      // Which shrunk copy fits depends on each broker's header overhead; both say what happened.
      if (copy.headers[DeadLetterHeader.bodyOmitted] !== undefined) {
        expect(copy.headers[DeadLetterHeader.bodyOmitted]).toBe(String(big.byteLength));
        expect(copy.body.byteLength).toBe(0);
      } else {
        expect(copy.body.byteLength, 'the body, when the copy kept it').toBe(big.byteLength);
      }
      expect(copy.headers[DeadLetterHeader.error]!.length, 'the error text, shortened to fit').toBeLessThan(200);
      expect(copy.headers[DeadLetterHeader.error]).toMatch(/^refused: x+/);
    },
  );

  h.test('a dead-letter topic no broker can carry is refused at subscribe (CONFIG_INVALID), not at the first dead letter', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('dlq-names');
    for (const bad of ['has space', 'orders.*', '', 'orders.']) {
      const error = await rejection(bus.subscribe(topic, () => undefined, { deadLetter: { topic: bad } }));
      expect(error.code, `dead-letter topic ${JSON.stringify(bad)}`).toBe(ErrorCode.ConfigInvalid);
      expect(error.message).toMatch(/dead-letter topic/);
    }
    const dotted = await h.bus({ deadLetterSuffix: '.' });
    const error = await rejection(dotted.subscribe(topic, () => undefined));
    expect(error.code, 'a suffix that makes an invalid name').toBe(ErrorCode.ConfigInvalid);
  });
}
