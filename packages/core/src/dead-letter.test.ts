import { describe, expect, it } from 'vitest';
import { HTTP_BINDING, KAFKA_BINDING } from './cloudevents-binding.js';
import { deadLetterCopies, DeadLetterHeader, deadLetterId, publishDeadLetter } from './dead-letter.js';
import { BuslineError, ErrorCode } from './errors.js';
import type { WireMessage } from './driver.js';

const original = { key: 'k', headers: { 'ce-id': 'evt-1', 'ce-type': 'orders' }, body: new Uint8Array(100), deliveryId: '42' };

describe('dead-letter copies', () => {
  it('get an id of their own per group, stable for one group, and keep the original id and delivery id in headers', () => {
    const [a] = deadLetterCopies({ message: original, error: new Error('no'), attempts: 3, topic: 'orders', group: 'billing', binding: HTTP_BINDING });
    const [b] = deadLetterCopies({ message: original, error: new Error('no'), attempts: 3, topic: 'orders', group: 'shipping', binding: HTTP_BINDING });
    expect(a!.headers['ce-id']).toBe(deadLetterId('evt-1', 'billing'));
    expect(a!.headers['ce-id']).not.toBe(b!.headers['ce-id']);
    expect(a!.headers[DeadLetterHeader.originalId]).toBe('evt-1');
    expect(a!.headers[DeadLetterHeader.deliveryId]).toBe('42');
    expect(original.headers['ce-id'], 'the original is untouched').toBe('evt-1');
  });

  it('write the copy id in the naming the original used: ce_id on a Kafka record, ce-id on one written before the ce_ change', () => {
    const kafka = { ...original, headers: { ce_id: 'evt-2', ce_type: 'orders' } };
    const [copy] = deadLetterCopies({ message: kafka, error: new Error('no'), attempts: 1, topic: 't', group: 'g', binding: KAFKA_BINDING });
    expect(copy!.headers.ce_id).toBe(deadLetterId('evt-2', 'g'));
    expect(copy!.headers['ce-id'], 'no second id in the other naming').toBeUndefined();
    const [legacy] = deadLetterCopies({ message: original, error: new Error('no'), attempts: 1, topic: 't', group: 'g', binding: KAFKA_BINDING });
    expect(legacy!.headers['ce-id']).toBe(deadLetterId('evt-1', 'g'));
    expect(legacy!.headers.ce_id).toBeUndefined();
  });

  it('describe anything thrown, with the code of a BuslineError', () => {
    for (const error of [undefined, Symbol('s'), 10n, () => 1, { self: null as unknown }]) {
      const [copy] = deadLetterCopies({ message: original, error, attempts: 1, topic: 't', group: 'g', binding: HTTP_BINDING });
      expect(copy!.headers[DeadLetterHeader.error]).toMatch(/\S/);
    }
    const [coded] = deadLetterCopies({ message: original, error: new BuslineError(ErrorCode.EnvelopeInvalid, 'bad'), attempts: 1, topic: 't', group: 'g', binding: HTTP_BINDING });
    expect(coded!.headers[DeadLetterHeader.errorCode]).toBe(ErrorCode.EnvelopeInvalid);
  });

  it('shrink while the broker says too large: short error text, then no body; other failures are returned as they are', async () => {
    const copies = deadLetterCopies({ message: original, error: new Error('x'.repeat(5_000)), attempts: 1, topic: 't', group: 'g', binding: HTTP_BINDING });
    expect(copies[0]!.headers[DeadLetterHeader.error]!.length).toBe(1024);
    expect(copies[1]!.headers[DeadLetterHeader.error]!.length).toBe(96);
    expect(copies[2]!.body.byteLength).toBe(0);
    expect(copies[2]!.headers[DeadLetterHeader.bodyOmitted]).toBe('100');

    const tooLarge = new BuslineError(ErrorCode.MessageTooLarge, 'too large');
    const tried: WireMessage[] = [];
    expect(await publishDeadLetter(copies, async (c) => (tried.push(c), c.body.byteLength > 0 ? tooLarge : undefined))).toBeUndefined();
    expect(tried).toHaveLength(3);

    const down = new BuslineError(ErrorCode.BrokerUnavailable, 'down');
    const once: WireMessage[] = [];
    expect(await publishDeadLetter(copies, async (c) => (once.push(c), down))).toBe(down);
    expect(once).toHaveLength(1);
  });
});
