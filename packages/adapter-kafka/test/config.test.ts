/**
 * The `kafka` config section: URL shorthand, defaults, and validation
 * through createEventBus (no broker needed: the bus is not started).
 */
import { describe, expect, it } from 'vitest';
import { createEventBus, ErrorCode, type BuslineError } from '@busline/core';
import { adapter, kafkaConfigSchema, sectionFromUrl } from '../src/index.js';

describe('kafka config', () => {
  it('sectionFromUrl turns a host list into brokers (default port 9092)', () => {
    expect(sectionFromUrl('kafka://127.0.0.1:9092')).toEqual({ brokers: ['127.0.0.1:9092'] });
    expect(sectionFromUrl('kafka://a,b')).toEqual({ brokers: ['a:9092', 'b:9092'] });
    expect(sectionFromUrl('kafka://h:9093/?clientId=orders')).toEqual({ brokers: ['h:9093'], clientId: 'orders' });
    // WHATWG URL refuses "a:1,b:2"; core hands the adapter the text as written.
    expect(sectionFromUrl('kafka://a:9092,b:9093')).toEqual({ brokers: ['a:9092', 'b:9093'] });
  });

  it('applies safe defaults: the kafka-ts producer, acks all, idempotent, short linger, one batch in flight', () => {
    const c = kafkaConfigSchema.parse({ brokers: ['127.0.0.1:9092'] });
    expect(c.producer).toMatchObject({ client: 'kafka-ts', acks: 'all', idempotent: true, lingerMs: 2, maxInFlightBatches: 1 });
    expect(c.consumer.commitIntervalMs).toBeGreaterThan(0);
    expect(c.logLevel).toBe('nothing');
  });

  it('is strict and names every bad field', () => {
    const result = kafkaConfigSchema.safeParse({ brokers: ['no-port'], producer: { acks: 'some', linger: 3 }, bogus: 1 });
    expect(result.success).toBe(false);
    const paths = result.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['brokers.0', 'producer.acks', 'producer', '']));
  });

  it('createEventBus validates the kafka section and reports it under "kafka."', async () => {
    let error: BuslineError | undefined;
    try {
      await createEventBus({ type: 'kafka', kafka: { brokers: [], consumer: { commitIntervalMs: 0 } } }, { adapter });
    } catch (e) {
      error = e as BuslineError;
    }
    expect(error?.code).toBe(ErrorCode.ConfigInvalid);
    expect(error?.message).toContain('kafka.brokers');
    expect(error?.message).toContain('kafka.consumer.commitIntervalMs');
  });

  it('never puts SASL credentials into an error message', () => {
    const result = kafkaConfigSchema.safeParse({
      brokers: ['h:9092'],
      sasl: { mechanism: 'scram-sha-512', username: 'svc', password: 'hunter2-secret', extra: 'x' },
    });
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error!.issues)).not.toContain('hunter2-secret');
  });

  it('declares its capabilities honestly', async () => {
    const bus = await createEventBus({ type: 'kafka', kafka: { brokers: ['127.0.0.1:9092'] } }, { adapter });
    expect(bus.capabilities).toMatchObject({
      persistent: true,
      perKeyOrder: true,
      consumerGroups: true,
      nativeRedeliveryDelay: false,
      dedupe: false,
      exactlyOnce: false,
      subscribeAfterStartRestartsConsumer: true,
      atomicBatch: false,
      redeliveryLimit: true,
    });
    await bus.close();
  });

  it('refuses credentials in the URL, pointing to the sasl option, without echoing them', async () => {
    const error = (await createEventBus('kafka://svc:hunter2-secret@127.0.0.1:9092', { adapter }).catch((e: unknown) => e)) as BuslineError;
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    expect(error.message).toContain('url: credentials in a kafka:// URL are not used');
    expect(error.message).toContain('kafka.sasl');
    expect(`${error.message} ${error.stack} ${JSON.stringify(error)}`).not.toContain('hunter2-secret');
    // The same credentials as the sasl option work.
    const bus = await createEventBus({ url: 'kafka://127.0.0.1:9092', kafka: { sasl: { mechanism: 'scram-sha-256', username: 'svc', password: 'hunter2-secret' } } }, { adapter });
    expect((bus.driver as unknown as { config: { sasl?: unknown } }).config.sasl).toMatchObject({ mechanism: 'scram-sha-256', username: 'svc' });
    await bus.close();
  });

  it('says an unreachable cluster is unreachable within seconds (BROKER_UNAVAILABLE), not after the ~23 s retry budget', async () => {
    const bus = await createEventBus({ url: 'kafka://127.0.0.1:1' }, { adapter });
    const started = Date.now();
    const error = (await bus.start().catch((e: unknown) => e)) as BuslineError;
    const tookMs = Date.now() - started;
    expect(error.code).toBe(ErrorCode.BrokerUnavailable);
    expect(error.message).toContain('connecting to Kafka at 127.0.0.1:1: no broker answered (3 attempts');
    expect(error.message).toContain('kafka.connectRetries');
    expect(tookMs).toBeLessThan(5_000);
    await bus.close();
  });

  it('producer.client "kafka-ts" refuses what kafka-ts cannot do, each with what to change', async () => {
    const result = kafkaConfigSchema.safeParse({
      brokers: ['h:9092'],
      producer: { client: 'kafka-ts', acks: 'leader', idempotent: false, compression: 'gzip', maxInFlightBatches: 2 },
      sasl: { mechanism: 'aws', authorizationIdentity: 'a', accessKeyId: 'k', secretAccessKey: 's' },
    });
    expect(result.success).toBe(false);
    const issues = result.error!.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues.map(([path]) => path)).toEqual(['producer.acks', 'producer.idempotent', 'producer.compression', 'producer.maxInFlightBatches', 'sasl.mechanism']);
    for (const [, message] of issues) expect(message).toContain('producer.client: "kafkajs"');
    // The same settings with kafkajs are fine, and kafka-ts with its own settings.
    expect(kafkaConfigSchema.safeParse({ brokers: ['h:9092'], producer: { client: 'kafkajs', acks: 'leader', idempotent: false, compression: 'gzip' } }).success).toBe(true);
    expect(kafkaConfigSchema.parse({ brokers: ['h:9092'], producer: { client: 'kafka-ts' }, ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } }).producer.client).toBe('kafka-ts');

    const error = (await createEventBus({ type: 'kafka', kafka: { brokers: ['h:9092'], producer: { client: 'kafka-ts', acks: 'none' } } }, { adapter }).catch((e: unknown) => e)) as BuslineError;
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    expect(error.message).toContain('kafka.producer.acks');
    expect(error.message).toContain('acks "all"');
  });
});
