import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type TlsOptions } from '@nats-io/nats-core';
import { AuthFailedError, errorMessage, untrustedCertificate } from '@busline/core/driver';
import type { NatsConfig } from './config.js';

/** `nats://user:secret@host:4222` → `nats://host:4222`: what may appear in logs and errors. */
export function redactServer(server: string): string {
  return server.replace(/\/\/[^@/]*@/, '//');
}

/**
 * AUTH_FAILED for a connect the server refused (user/pass, token, nkey or
 * creds) or whose TLS certificate the client did not trust, naming the
 * settings to change; undefined for any other error.
 */
export function authFailure(error: unknown, where: string): AuthFailedError | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'AuthorizationError' || name === 'UserAuthenticationExpiredError') {
    return new AuthFailedError(
      `cannot connect to NATS at ${where}: the server refused the credentials (${errorMessage(error)}); check nats.user and pass (or the URL's user:pass@), token, nkeySeed or credsFile`,
      error,
    );
  }
  return untrustedCertificate(error, `cannot connect to NATS at ${where}`, 'nats.tls.ca');
}

/**
 * The NATS client options for a config section. Credentials go to the client
 * only; nothing here is logged. Secrets are read lazily by the authenticators
 * (a creds file is re-read on every reconnect, so rotated credentials apply).
 */
export function connectionOptions(config: NatsConfig): ConnectionOptions {
  const options: ConnectionOptions = {
    servers: config.servers,
    name: config.name,
    timeout: config.connectTimeoutMs,
    reconnect: true,
    maxReconnectAttempts: config.reconnect.maxAttempts,
    reconnectTimeWait: config.reconnect.timeWaitMs,
    reconnectJitter: config.reconnect.jitterMs,
    reconnectJitterTLS: config.reconnect.jitterMs,
    // Stack traces for every request are costly and not needed: errors are wrapped with context here.
    noAsyncTraces: true,
    // Keep the connect options (and its credentials) out of any debug output.
    debug: false,
  };
  if (config.inboxPrefix !== undefined) options.inboxPrefix = config.inboxPrefix;
  if (config.user !== undefined) {
    options.user = config.user;
    if (config.pass !== undefined) options.pass = config.pass;
  }
  if (config.token !== undefined) options.token = config.token;
  if (config.nkeySeed !== undefined) {
    const seed = new TextEncoder().encode(config.nkeySeed);
    options.authenticator = nkeyAuthenticator(() => seed);
  }
  if (config.credsFile !== undefined) {
    const path = config.credsFile;
    options.authenticator = credsAuthenticator(() => new Uint8Array(readFileSync(path)));
  }
  // A tls:// server asks for TLS as the `tls` option does (the NATS client itself looks at the option only).
  if (config.tls === undefined && config.servers.some((s) => /^tls:\/\//i.test(s))) options.tls = {};
  if (config.tls !== undefined) {
    const tls: TlsOptions = {};
    for (const [k, v] of Object.entries(config.tls)) if (v !== undefined) (tls as Record<string, unknown>)[k] = v;
    options.tls = tls;
  }
  return options;
}
