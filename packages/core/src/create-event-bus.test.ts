import { describe, expect, it } from 'vitest';
import { configFromEnv } from './config.js';
import { createEventBus } from './create-event-bus.js';
import { ConfigError, ErrorCode } from './errors.js';
import { assertTopicName } from './topic.js';

describe('config and factory', () => {
  it('lists every bad field at once', async () => {
    const error = await createEventBus({
      type: 'memory',
      group: 'bad group',
      topicStrategy: 'sometimes' as never,
      publish: { timeoutMs: -1 },
      topics: { 'bad topic': {}, ok: { retentionMs: 0 } },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues.join('\n');
    for (const field of ['group', 'topicStrategy', 'publish.timeoutMs', 'topics.bad topic', 'topics.ok.retentionMs']) expect(issues).toContain(field);
    expect((error as ConfigError).code).toBe(ErrorCode.ConfigInvalid);
  });

  it('rejects unknown keys and a URL with an unknown scheme', async () => {
    await expect(createEventBus({ type: 'memory', tpoics: {} } as never)).rejects.toThrow(/tpoics/);
    await expect(createEventBus('redis://x')).rejects.toThrow(/scheme "redis:"/);
    await expect(createEventBus({ type: 'nats', url: 'kafka://h:1' })).rejects.toThrow(/contradicts/);
  });

  it('reads the config from the environment', () => {
    expect(configFromEnv({})).toEqual({ type: 'memory' });
    expect(
      configFromEnv({ BUSLINE_URL: 'nats://h:4222', BUSLINE_GROUP: 'billing', BUSLINE_PUBLISH_TIMEOUT_MS: '500', BUSLINE_CONFIG: '{"source":"svc"}' }),
    ).toEqual({ url: 'nats://h:4222', group: 'billing', source: 'svc', publish: { timeoutMs: 500 } });
    expect(() => configFromEnv({ BUSLINE_CONFIG: '{' })).toThrow(ConfigError);
  });

  it.each([
    ['', 'must not be empty'],
    ['a b', 'whitespace'],
    ['orders.*', 'wildcards'],
    ['orders.>', 'wildcards'],
    ['x'.repeat(201), 'at most 200'],
    ['a..b', '".."'],
    ['ünicode', 'may only contain'],
  ])('topic name %j is rejected: %s', (name, reason) => {
    expect(() => assertTopicName(name)).toThrow(reason);
    try {
      assertTopicName(name);
    } catch (e) {
      expect((e as { code: string }).code).toBe(ErrorCode.TopicInvalid);
    }
  });
});

describe('URL shorthand', () => {
  it('hands host lists to the adapter as written', async () => {
    const bus = await createEventBus('memory://url-test');
    expect((bus.driver as unknown as { broker: { name: string } }).broker.name).toBe('url-test');
    await bus.close();
    await expect(createEventBus('nats://a:4222,b:4222', { adapter: { ...(await import('@busline/adapter-memory')).adapter, type: 'nats', sectionFromUrl: (raw: string) => ({ broker: raw.split(',').length === 2 ? 'two-hosts' : 'one' }) } })).resolves.toMatchObject({ driver: { broker: { name: 'two-hosts' } } });
    await expect(createEventBus('not a url')).rejects.toThrow(/is not a URL/);
  });
});

describe('third-party adapters', () => {
  it('accepts an adapter module of its own type, with its section under that type', async () => {
    const { adapter: memory } = await import('@busline/adapter-memory');
    const acme = { ...memory, type: 'acme' };
    const bus = await createEventBus({ type: 'acme', acme: { broker: 'acme-test' } } as never, { adapter: acme });
    await bus.start();
    await expect(bus.publish('t', { ok: true })).resolves.toMatchObject({ topic: 't' });
    await bus.close();
    await expect(createEventBus({ type: 'acme', acme: { nope: 1 } } as never, { adapter: acme })).rejects.toThrow(/acme/);
    await expect(createEventBus({ type: 'acme' } as never)).rejects.toThrow(/third-party adapter/);
  });
});
