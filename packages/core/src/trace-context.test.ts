import { describe, expect, it } from 'vitest';
import { decodeEnvelope } from './envelope-decoding.js';
import { encodeNewEnvelope } from './envelope-encoding.js';
import { traceIdOf } from './trace-context.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('traceIdOf', () => {
  it('reads the trace id of a W3C traceparent', () => {
    expect(traceIdOf(TRACEPARENT)).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(traceIdOf('cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future')).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it.each([undefined, '', 'garbage', '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', `00-${'0'.repeat(32)}-b7ad6b7169203331-01`, '00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01'])(
    'none for %j',
    (value) => expect(traceIdOf(value)).toBeUndefined(),
  );
});

describe("the envelope's traceId", () => {
  it.each(['binary', 'structured'] as const)('%s: taken from traceparent when the message has no trace id of its own; its own wins', (contentMode) => {
    const defaults = { type: 'order.placed', source: 'test' };
    const plain = encodeNewEnvelope({ a: 1 }, { headers: { traceparent: TRACEPARENT } }, defaults, undefined, contentMode);
    const decoded = decodeEnvelope(plain);
    expect(decoded.ok && decoded.envelope.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    const own = encodeNewEnvelope({ a: 1 }, { headers: { traceparent: TRACEPARENT }, traceId: 'order-flow-7' }, defaults, undefined, contentMode);
    const decodedOwn = decodeEnvelope(own);
    expect(decodedOwn.ok && decodedOwn.envelope.traceId).toBe('order-flow-7');
  });
});
