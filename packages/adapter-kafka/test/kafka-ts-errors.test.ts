/**
 * kafka-ts's errors through kafka-errors.ts: the scope the batcher isolates
 * by and the typed error each publish gets. First on kafka-ts's own error
 * classes, then on the errors a kafka-ts producer really throws against the
 * broker (a missing topic, a record over the topic's limit, no broker).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkaTs from 'kafka-ts';
import { ErrorCode, NO_DRIVER_HOOKS, isBuslineError } from '@busline/core';
import { failureScope, protocolType, publishError } from '../src/kafka-errors.js';
import { kafkaConfigSchema } from '../src/config.js';
import { kafkaTsClientOptions } from '../src/kafka-ts-producer.js';
import { routeKafkaTsLog } from '../src/kafka-ts-log.js';
import { BROKERS, NO_BROKER, createTopic, newAdmin, unique } from './helpers.js';

const { API_ERROR, KafkaTSApiError, ConnectionError, KafkaTSError, createKafkaClient } = kafkaTs;

const api = (code: number) => new KafkaTSApiError(code, null, {});

function mapped(error: unknown) {
  const e = publishError(error, 'orders', 5_000);
  return { scope: failureScope(error), code: e.code, retryable: e.retryable };
}

describe('kafka-ts errors → busline errors', () => {
  it('names every protocol error it knows as kafka-ts does', () => {
    for (const [name, code] of Object.entries(API_ERROR)) {
      const type = protocolType(api(code));
      if (type !== `KAFKA_ERROR_${code}`) expect(type, `code ${code}`).toBe(name);
    }
  });

  it.each([
    ['MESSAGE_TOO_LARGE', 'record', ErrorCode.MessageTooLarge, false],
    ['RECORD_LIST_TOO_LARGE', 'record', ErrorCode.MessageTooLarge, false],
    ['UNKNOWN_TOPIC_OR_PARTITION', 'topic', ErrorCode.TopicNotFound, true],
    ['TOPIC_AUTHORIZATION_FAILED', 'topic', ErrorCode.PublishRejected, false],
    ['INVALID_RECORD', 'topic', ErrorCode.PublishRejected, false],
    ['NOT_ENOUGH_REPLICAS', 'batch', ErrorCode.PublishRejected, true],
    ['NOT_ENOUGH_REPLICAS_AFTER_APPEND', 'batch', ErrorCode.PublishRejected, true],
    ['CLUSTER_AUTHORIZATION_FAILED', 'batch', ErrorCode.PublishRejected, false],
    ['NOT_LEADER_OR_FOLLOWER', 'batch', ErrorCode.BrokerUnavailable, true],
    ['REQUEST_TIMED_OUT', 'batch', ErrorCode.PublishTimeout, true],
    ['OUT_OF_ORDER_SEQUENCE_NUMBER', 'session', ErrorCode.PublishRejected, false],
    ['UNKNOWN_PRODUCER_ID', 'session', ErrorCode.PublishRejected, false],
  ] as const)('%s: scope %s, %s, retryable %s', (name, scope, code, retryable) => {
    expect(mapped(api(API_ERROR[name]))).toEqual({ scope, code, retryable });
  });

  it('a connection refused or lost is BROKER_UNAVAILABLE; a request without an answer is PUBLISH_TIMEOUT', () => {
    expect(mapped(new ConnectionError('connect ECONNREFUSED 127.0.0.1:1'))).toEqual({ scope: 'batch', code: ErrorCode.BrokerUnavailable, retryable: true });
    expect(mapped(new ConnectionError('Connection to 127.0.0.1:1 timed out'))).toEqual({ scope: 'batch', code: ErrorCode.BrokerUnavailable, retryable: true });
    expect(mapped(new KafkaTSError('No seed brokers found'))).toEqual({ scope: 'batch', code: ErrorCode.BrokerUnavailable, retryable: true });
    expect(mapped(new ConnectionError('PRODUCE timed out'))).toEqual({ scope: 'batch', code: ErrorCode.PublishTimeout, retryable: true });
  });

  it('keeps the kafka-ts error as cause and names the broker\'s error', () => {
    const error = api(API_ERROR.NOT_ENOUGH_REPLICAS);
    const e = publishError(error, 'orders', 5_000);
    expect(e.cause).toBe(error);
    expect(e.details).toMatchObject({ topic: 'orders', kafkaError: 'NOT_ENOUGH_REPLICAS' });
  });
});

describe.skipIf(NO_BROKER)('kafka-ts errors from the broker', () => {
  const admin = newAdmin();
  const small = unique('kts-small');
  const config = kafkaConfigSchema.parse({ brokers: BROKERS.split(',') });
  let unroute: () => void;

  beforeAll(async () => {
    // kafka-ts logs refused connections on the console unless routed.
    unroute = routeKafkaTsLog(NO_DRIVER_HOOKS.log, 'nothing');
    await admin.connect();
    await createTopic(admin, { topic: small, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '20000' }] });
  });
  afterAll(async () => {
    await admin.deleteTopics({ topics: [small] }).catch(() => undefined);
    await admin.disconnect();
    unroute();
  });

  async function thrown(brokers: string[], messages: { topic: string; value: string; key?: string }[]): Promise<unknown> {
    const producer = createKafkaClient(kafkaTsClientOptions({ ...config, brokers })).createProducer({ maxRetries: 0 });
    try {
      await producer.send(messages);
      return undefined;
    } catch (error) {
      return error;
    } finally {
      await producer.close();
    }
  }

  it('a missing topic: TOPIC_NOT_FOUND, scope topic', async () => {
    const error = await thrown(config.brokers, [{ topic: unique('kts-missing'), value: 'x' }]);
    expect(error).toBeInstanceOf(KafkaTSApiError);
    expect(mapped(error)).toEqual({ scope: 'topic', code: ErrorCode.TopicNotFound, retryable: true });
  });

  it('a record over max.message.bytes: MESSAGE_TOO_LARGE, scope record, not retryable', async () => {
    const error = await thrown(config.brokers, [{ topic: small, key: 'k', value: 'x'.repeat(30_000) }]);
    expect(error).toBeInstanceOf(KafkaTSApiError);
    expect(mapped(error)).toEqual({ scope: 'record', code: ErrorCode.MessageTooLarge, retryable: false });
  });

  it('no broker at the address: BROKER_UNAVAILABLE, retryable', async () => {
    const error = await thrown(['127.0.0.1:1'], [{ topic: small, value: 'x' }]);
    expect(error).toBeInstanceOf(KafkaTSError);
    const e = publishError(error, small, 5_000);
    expect(isBuslineError(e) && [e.code, e.retryable]).toEqual([ErrorCode.BrokerUnavailable, true]);
  });
});
