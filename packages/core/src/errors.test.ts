import { describe, expect, it, vi } from 'vitest';
import { AuthFailedError, BuslineError, ClosedError, ConfigError, ErrorCode, errorCode, isBuslineError, tlsVerificationFailure } from './errors.js';

/** A second, separately evaluated copy of this module: what an adapter with its own @busline/core brings. */
async function otherCopy(): Promise<typeof import('./errors.js')> {
  vi.resetModules();
  const copy = await import('./errors.js');
  expect(copy.BuslineError).not.toBe(BuslineError);
  return copy;
}

describe('errors across copies of core', () => {
  it('recognises an error from another copy by its brand: isBuslineError, errorCode and instanceof BuslineError', async () => {
    const other = await otherCopy();
    const foreign = new other.ConfigError('bad config', ['group: bad']);
    expect(isBuslineError(foreign)).toBe(true);
    expect(errorCode(foreign)).toBe(ErrorCode.ConfigInvalid);
    expect(foreign instanceof BuslineError).toBe(true);
    expect((foreign as unknown as Record<symbol, unknown>)[Symbol.for('busline.error')]).toBe(true);
    // Both directions.
    expect(other.isBuslineError(new ClosedError())).toBe(true);
    expect(other.errorCode(new ClosedError())).toBe(ErrorCode.Closed);
  });

  it('keeps subclass checks exact', async () => {
    const other = await otherCopy();
    expect(new ClosedError() instanceof ConfigError).toBe(false);
    expect(new ConfigError('x', ['y']) instanceof ConfigError).toBe(true);
    expect(new other.ClosedError() instanceof ClosedError).toBe(false);
  });

  it('does not take an unrelated error that happens to carry a busline-like code for a busline error', () => {
    const socket = Object.assign(new Error('socket closed'), { code: 'CLOSED' });
    expect(isBuslineError(socket)).toBe(false);
    expect(errorCode(socket)).toBeUndefined();
    expect(socket instanceof BuslineError).toBe(false);
    expect(isBuslineError({ code: ErrorCode.Closed })).toBe(false);
  });

  it('survives hostile values', () => {
    const hostile = new Proxy({}, { get: () => { throw new Error('no'); } });
    expect(isBuslineError(hostile)).toBe(false);
    expect(errorCode(hostile)).toBeUndefined();
    for (const value of [undefined, null, 'CLOSED', 42, Symbol('x')]) expect(isBuslineError(value)).toBe(false);
  });
});

describe('AUTH_FAILED', () => {
  it('is not retryable', () => {
    expect(new AuthFailedError('refused')).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
  });

  it('finds a TLS verification failure among the causes, and nothing in other errors', () => {
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(tlsVerificationFailure(new Error('connect failed', { cause: tls }))).toEqual({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT', message: 'self-signed certificate' });
    expect(tlsVerificationFailure({ originalError: tls })).toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(tlsVerificationFailure(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBeUndefined();
    for (const value of [undefined, null, 'x', 42]) expect(tlsVerificationFailure(value)).toBeUndefined();
  });
});
