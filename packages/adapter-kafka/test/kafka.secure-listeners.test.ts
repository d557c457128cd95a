/**
 * SASL and TLS against a real broker, through each producer client: a
 * private single-node Kafka that also listens with SASL_PLAINTEXT (PLAIN,
 * SCRAM-SHA-256, SCRAM-SHA-512, and OAUTHBEARER with Kafka's JWT validator
 * checking an RS256 signature against an identity provider's keys, the token
 * from the bus's `oauthBearerProvider`) and with TLS (a self-signed certificate the
 * client is given as its CA). For each, a bus publishes an event and its own
 * group consumes it (consuming, the admin client and the producer all
 * authenticate). A wrong password, and a certificate the client does not
 * trust, and a token that is expired, signed by another key, or for another audience or issuer, fail the bus's start at once with AUTH_FAILED naming the setting to
 * change (before: BROKER_UNAVAILABLE, "no broker answered", after the retries).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBus, type EventBus } from '@busline/core';
import { adapter } from '../src/index.js';
import { NO_BROKER, unique, until } from './helpers.js';
import { PrivateKafkaBroker, SASL_USER, oauthSigningKey, signedJwt } from './kafka-broker.js';

const CLIENTS = ['kafkajs', 'kafka-ts'] as const;
const MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

describe.skipIf(NO_BROKER)('kafka: SASL and TLS listeners', () => {
  let broker: PrivateKafkaBroker;
  const buses: EventBus[] = [];
  beforeAll(async () => {
    broker = await PrivateKafkaBroker.start('secure', { secure: true });
  }, 180_000);
  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close().catch(() => undefined)));
    await broker?.stop();
  });

  function bus(endpoint: string, kafka: Record<string, unknown>): Promise<EventBus> {
    return createEventBus(
      { url: `kafka://${endpoint}`, group: unique('g-secure'), kafka: { connectionTimeoutMs: 5_000, retry: { retries: 1 }, ...kafka } },
      { adapter },
    ).then((b) => (buses.push(b), b));
  }

  /** Publishes one event through `b` and waits for its own subscription to handle it. */
  async function roundTrip(b: EventBus): Promise<unknown> {
    const topic = unique('secure');
    const seen: unknown[] = [];
    await b.subscribe(topic, (payload) => void seen.push(payload), { startFrom: 'earliest' });
    await b.start();
    await b.publish(topic, { hello: 'secure' }, { aggregateId: 'k' });
    await until(() => seen.length > 0, 30_000, () => `the event published on ${topic} was not handled`);
    return seen[0];
  }

  for (const client of CLIENTS) {
    for (const mechanism of MECHANISMS) {
      it(`${client} producer, SASL ${mechanism}: publishes and consumes`, { timeout: 60_000 }, async () => {
        const b = await bus(broker.secure!.sasl, { sasl: { mechanism, ...SASL_USER }, producer: { client } });
        expect(await roundTrip(b)).toEqual({ hello: 'secure' });
      });
    }

    it(`${client} producer, SASL oauthbearer (the provider's token): publishes and consumes`, { timeout: 60_000 }, async () => {
      let asked = 0;
      const oauthBearerProvider = async () => {
        asked++;
        return { value: signedJwt(broker.secure!.oauthKey, SASL_USER.username) };
      };
      const b = await bus(broker.secure!.sasl, { sasl: { mechanism: 'oauthbearer', oauthBearerProvider }, producer: { client } });
      expect(await roundTrip(b)).toEqual({ hello: 'secure' });
      // Every connection (admin, consumer, producer) authenticated with a token of the provider.
      expect(asked).toBeGreaterThanOrEqual(2);
    });

    const refusedTokens: [string, () => string][] = [
      // Past the validator's clock skew allowance (30 s).
      ['an expired token', () => signedJwt(broker.secure!.oauthKey, SASL_USER.username, -300)],
      ['a token signed by a key the broker does not trust', () => signedJwt(oauthSigningKey(), SASL_USER.username)],
      ['a token for another audience', () => signedJwt(broker.secure!.oauthKey, SASL_USER.username, 3_600, { aud: 'another-service' })],
      ['a token from another issuer', () => signedJwt(broker.secure!.oauthKey, SASL_USER.username, 3_600, { iss: 'https://idp.elsewhere.test' })],
    ];
    for (const [what, token] of refusedTokens) {
      it(`${client} producer, SASL oauthbearer with ${what}: start fails with AUTH_FAILED naming kafka.sasl`, { timeout: 60_000 }, async () => {
        const oauthBearerProvider = async () => ({ value: token() });
        const b = await bus(broker.secure!.sasl, { sasl: { mechanism: 'oauthbearer', oauthBearerProvider }, producer: { client } });
        const error = await b.start().then(() => undefined, (e: unknown) => e);
        expect(error).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
        expect((error as Error).message).toMatch(/refused the SASL authentication.*check kafka\.sasl.*oauthBearerProvider/);
      });
    }

    it(`${client} producer, TLS with the broker's certificate as CA: publishes and consumes`, { timeout: 60_000 }, async () => {
      const b = await bus(broker.secure!.tls, { ssl: { ca: [broker.secure!.ca] }, producer: { client } });
      expect(await roundTrip(b)).toEqual({ hello: 'secure' });
    });

    it(`${client} producer, a wrong SASL password: start fails with AUTH_FAILED naming kafka.sasl`, { timeout: 60_000 }, async () => {
      const b = await bus(broker.secure!.sasl, { sasl: { mechanism: 'scram-sha-256', username: SASL_USER.username, password: 'wrong' }, producer: { client } });
      const error = await b.start().then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
      expect((error as Error).message).toMatch(/refused the SASL authentication.*check kafka\.sasl/);
    });

    it(`${client} producer, TLS without trusting the certificate: start fails with AUTH_FAILED naming kafka.ssl.ca`, { timeout: 60_000 }, async () => {
      const b = await bus(broker.secure!.tls, { ssl: true, producer: { client } });
      const error = await b.start().then(() => undefined, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'AUTH_FAILED', retryable: false, details: { tlsError: 'DEPTH_ZERO_SELF_SIGNED_CERT' } });
      expect((error as Error).message).toMatch(/TLS certificate was not accepted.*kafka\.ssl\.ca/);
    });
  }
});
