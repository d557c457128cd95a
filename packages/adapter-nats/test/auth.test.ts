/**
 * Authentication on servers of the test's own: one that requires a user and
 * password, one that speaks TLS with a self-signed certificate (openssl).
 * The right settings publish and consume; a wrong password, and a
 * certificate the client does not trust, fail the bus's start at once with
 * AUTH_FAILED naming the settings to change (before: BROKER_UNAVAILABLE), and
 * the password never shows in the error.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from '@busline/conformance';
import { Buses, SKIP, topicName } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

const PASSWORD = 'busline-secret-4711';

describe.skipIf(SKIP)('nats: authentication (own servers)', () => {
  const buses = new Buses();
  const certs = mkdtempSync(join(tmpdir(), 'busline-nats-tls-'));
  let withUser: PrivateNatsServer;
  let withTls: PrivateNatsServer;
  let ca: string;
  beforeAll(async () => {
    const [cert, key] = [join(certs, 'server.pem'), join(certs, 'server.key')];
    // nats.js connects to 127.0.0.1 by the name "localhost": the certificate holds both.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '7', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], {
      stdio: 'ignore',
    });
    ca = readFileSync(cert, 'utf8');
    [withUser, withTls] = await Promise.all([
      PrivateNatsServer.start('auth-user', ['--user', 'busline', '--pass', PASSWORD]),
      PrivateNatsServer.start('auth-tls', ['--tls', '--tlscert', cert, '--tlskey', key]),
    ]);
  }, 60_000);
  afterEach(() => buses.closeAll());
  afterAll(async () => {
    await Promise.all([withUser?.stop(), withTls?.stop()]);
    rmSync(certs, { recursive: true, force: true });
  }, 60_000);

  async function roundTrip(url: string, nats: Record<string, unknown>): Promise<void> {
    const bus = await buses.make(url, { nats });
    const topic = topicName('auth');
    const got = new Collector();
    await bus.subscribe(topic, async (_p, ctx) => got.add(ctx.envelope.id, null));
    const { id } = await bus.publish(topic, { hello: 'auth' });
    await got.waitForIds([id], 10_000);
  }

  async function startError(url: string, nats: Record<string, unknown>): Promise<Error & { code?: string; retryable?: boolean; details?: object }> {
    const bus = await buses.make(url, { nats: { connectTimeoutMs: 3_000, ...nats } }, false);
    return bus.start().then(
      () => {
        throw new Error('start succeeded');
      },
      (e: Error) => e,
    );
  }

  it('user and password: publishes and consumes', async () => {
    await roundTrip(withUser.url, { user: 'busline', pass: PASSWORD });
  });

  it('a wrong password: AUTH_FAILED naming nats.user and pass, without the password', async () => {
    const error = await startError(withUser.url, { user: 'busline', pass: 'not-the-password' });
    expect(error).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
    expect(error.message).toMatch(/refused the credentials.*check nats\.user and pass/);
    expect(inspect(error, { depth: 10 })).not.toContain('not-the-password');
  });

  it('no credentials where the server asks for them: AUTH_FAILED', async () => {
    expect(await startError(withUser.url, {})).toMatchObject({ code: 'AUTH_FAILED' });
  });

  it('TLS with the server certificate as CA: publishes and consumes', async () => {
    await roundTrip(withTls.url.replace('nats://', 'tls://'), { tls: { ca } });
  });

  it('TLS without trusting the certificate: AUTH_FAILED naming nats.tls.ca', async () => {
    const error = await startError(withTls.url.replace('nats://', 'tls://'), {});
    expect(error).toMatchObject({ code: 'AUTH_FAILED', retryable: false, details: { tlsError: 'DEPTH_ZERO_SELF_SIGNED_CERT' } });
    expect(error.message).toMatch(/TLS certificate was not accepted.*nats\.tls\.ca/);
  });
});
