import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventBus } from './create-event-bus.js';
import { consoleLogger, redactSecrets, type Logger } from './logger.js';

const { adapter: memory } = await import('@busline/adapter-memory');
let n = 0;
const broker = () => `logger-test-${process.pid}-${++n}`;

function waitUntil(predicate: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out: ${what}`));
      setTimeout(poll, 5);
    };
    poll();
  });
}

afterEach(() => vi.restoreAllMocks());

describe('default logger', () => {
  it('prints a handler that always throws and a malformed message to console.error', async () => {
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void errors.push(line));
    const bus = await createEventBus({ type: 'memory', group: 'logs', memory: { broker: broker() }, retry: { maxAttempts: 2, initialDelayMs: 5 } }, { adapter: memory });
    await bus.subscribe('always-throws', () => {
      throw new Error('the handler is broken');
    });
    await bus.start();
    await bus.publish('always-throws', { n: 1 });
    await bus.publishWire('always-throws', { headers: { 'ce-id': 'x' }, body: new Uint8Array([1]) });
    await waitUntil(() => errors.filter((l) => l.includes('dead-lettered')).length === 2, 'two dead letters logged');
    expect(errors.some((l) => l.startsWith('busline error: message dead-lettered to "always-throws.dlq"') && l.includes('the handler is broken'))).toBe(true);
    expect(errors.some((l) => l.includes('decoding a message on topic "always-throws"') && l.includes('ce-type is missing'))).toBe(true);
    await bus.close();
  });

  it('drops debug and info; warn and error become one line each with the fields as JSON', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const log = consoleLogger().child!({ service: 'a' });
    log.info({ x: 1 }, 'not shown');
    log.debug({ x: 1 }, 'not shown');
    log.warn({ x: 2 }, 'shown');
    expect(warn.mock.calls).toEqual([['busline warn: shown {"service":"a","x":2}']]);
  });

  it('logger: false logs nothing', async () => {
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    const bus = await createEventBus({ type: 'memory', group: 'quiet', memory: { broker: broker() }, logger: false }, { adapter: memory });
    await bus.start();
    bus.emit('error', new Error('x'), 'a test');
    expect(error).not.toHaveBeenCalled();
    await bus.close();
  });
});

describe('warnings once per process', () => {
  function capture(): Logger & { warnings: string[] } {
    const warnings: string[] = [];
    const none = () => {};
    return { warnings, debug: none, info: none, error: none, warn: (_o, msg) => void warnings.push(msg) };
  }

  it('the in-memory broker under NODE_ENV=production, and a subscription on the default group name', async () => {
    const logger = capture();
    vi.stubEnv('NODE_ENV', 'production');
    try {
      for (let i = 0; i < 2; i++) {
        const bus = await createEventBus({ type: 'memory', memory: { broker: broker() }, logger }, { adapter: memory });
        await bus.subscribe('shared', () => {});
        await bus.start();
        await bus.close();
      }
    } finally {
      vi.unstubAllEnvs();
    }
    expect(logger.warnings.filter((w) => w.includes('in-memory broker'))).toHaveLength(1);
    expect(logger.warnings.filter((w) => w.includes('default group name "default"'))).toHaveLength(1);
  });
});

describe('redactSecrets', () => {
  it('removes credentials from URLs and leaves other text alone', () => {
    expect(redactSecrets('connect nats://alice:s3cret@host:4222,kafka://bob@h:9092 failed')).toBe('connect nats://***@host:4222,kafka://***@h:9092 failed');
    expect(redactSecrets('mail me at a@b.c')).toBe('mail me at a@b.c');
  });
});
