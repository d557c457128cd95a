import { z } from 'zod';

export const DEFAULT_SERVER = 'nats://127.0.0.1:4222';
/** Publishes awaiting their JetStream acknowledgement at once, by default. */
export const DEFAULT_PUBLISH_WINDOW = 2_048;
/** Acks normally come in milliseconds; after 2 s one is taken as lost (a stream leader died) and the message sent again. */
export const DEFAULT_PUBLISH_RESEND_MS = 2_000;
/** Messages asked for per pull request, by default. */
export const DEFAULT_PULL_BATCH = 500;
/** How long a pull request waits on the server before it expires and a new one is sent. */
export const DEFAULT_PULL_EXPIRES_MS = 30_000;
export const DEFAULT_IDLE_HEARTBEAT_MS = 5_000;
/**
 * The consumer's ack_wait default: an unsettled message is redelivered after it (core extends the
 * lease of messages it still holds).
 */
export const DEFAULT_ACK_WAIT_MS = 10_000;
/** The JetStream default duplicate window (2 minutes). */
export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

const positiveInt = z.number().int().positive();

/**
 * What is wrong with a server address, or undefined: `[nats|tls://][user[:pass]@]host[:port]`
 * with a port of 1 to 65535. Checked here so a typo is a config error, not a
 * connection that is retried as if the broker were down. (Only the host part is quoted.)
 */
function serverProblem(server: string): string | undefined {
  const match = /^(?:([a-z][a-z0-9+.-]*):\/\/)?(?:[^@/]*@)?(\[[0-9a-f:.]+\]|[^\s:/@[\]]+)(?::([^/]*))?\/?$/i.exec(server.trim());
  if (!match) return 'is not host[:port], nats://host[:port] or tls://host[:port]';
  const [, scheme, host, port] = match;
  if (scheme !== undefined && !/^(nats|tls)$/i.test(scheme)) return `${host}: scheme "${scheme}://" is not nats:// or tls://`;
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65_535)) {
    return `${host}: port "${port}" is not a number from 1 to 65535`;
  }
  return undefined;
}

const serverSchema = z.string().superRefine((server, ctx) => {
  const problem = serverProblem(server);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `server ${problem}` });
});

const tlsSchema = z
  .object({
    caFile: z.string().min(1).optional().describe('Path to a PEM file of CA certificates that sign the server certificate.'),
    certFile: z.string().min(1).optional().describe('Path to the client certificate (PEM), for servers that verify clients.'),
    keyFile: z.string().min(1).optional().describe('Path to the client private key (PEM).'),
    ca: z.string().min(1).optional().describe('CA certificates as PEM text (instead of caFile).'),
    cert: z.string().min(1).optional().describe('Client certificate as PEM text (instead of certFile).'),
    key: z.string().min(1).optional().describe('Client private key as PEM text (instead of keyFile). Never logged.'),
    handshakeFirst: z.boolean().optional().describe('Start TLS before the NATS INFO exchange (server option handshake_first).'),
  })
  .strict()
  .describe('TLS: set (even to {}) to require TLS; the fields are passed to the NATS client unchanged.');

const reconnectSchema = z
  .object({
    maxAttempts: z
      .number()
      .int()
      .min(-1)
      .default(-1)
      .describe('Reconnect attempts per server before the connection is given up and closed; -1 = never give up.'),
    timeWaitMs: z.number().int().min(0).default(1_000).describe('Wait between reconnect attempts to one server (ms).'),
    jitterMs: z.number().int().min(0).default(200).describe('Random extra wait added to each reconnect attempt (ms), so many clients spread out.'),
  })
  .strict()
  .describe('How the connection comes back after the server goes away.');

/** The `nats` section of a busline config (also what `nats://host:4222` turns into). */
export const natsConfigSchema = z
  .object({
    servers: z
      .array(serverSchema)
      .min(1)
      .default([DEFAULT_SERVER])
      .describe('Server URLs (nats://host:port, or tls://host:port for TLS); the client picks one and fails over to the others.'),
    name: z.string().min(1).default('busline').describe('Connection name shown in the server monitoring pages.'),
    user: z.string().min(1).optional().describe('User name (with pass). Never logged.'),
    pass: z.string().optional().describe('Password for user. Never logged.'),
    token: z.string().min(1).optional().describe('Authentication token. Never logged.'),
    credsFile: z.string().min(1).optional().describe('Path to a .creds file (user JWT + nkey seed) for decentralized auth.'),
    nkeySeed: z.string().min(1).optional().describe('An nkey user seed (SU...) for nkey auth. Never logged.'),
    tls: tlsSchema.optional().describe('TLS: set (even to {}) to require TLS; the fields are passed to the NATS client unchanged.'),
    inboxPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/)
      .optional()
      .describe('Prefix of reply subjects (default _INBOX), for accounts whose permissions restrict inboxes.'),
    connectTimeoutMs: positiveInt.default(10_000).describe('How long connecting to one server may take (ms).'),
    apiTimeoutMs: positiveInt.default(10_000).describe('Timeout of JetStream API requests (stream and consumer admin), in ms.'),
    reconnect: reconnectSchema.default(reconnectSchema.parse({})).describe('How the connection comes back after the server goes away.'),

    streamMode: z
      .enum(['perTopic', 'shared'])
      .default('perTopic')
      .describe(
        '`perTopic`: a JetStream stream per persistent topic (name = streamPrefix + topic). `shared`: every topic is a ' +
          'subject of one stream (sharedStream); topic options then apply to the whole stream.',
      ),
    streamPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/)
      .default('BL_')
      .describe('Prefix of per-topic stream names.'),
    sharedStream: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .default('BUSLINE')
      .describe('Name of the stream used when streamMode is `shared`.'),
    storage: z.enum(['file', 'memory']).default('file').describe('Storage of streams this adapter creates (existing streams keep theirs).'),
    duplicateWindowMs: z
      .number()
      .int()
      .min(0)
      .default(DEFAULT_DUPLICATE_WINDOW_MS)
      .describe(
        'Stream duplicate window for streams this adapter creates: a message whose Nats-Msg-Id (the event id) was stored ' +
          'within this window is stored once. Capped by the topic retention. Must exceed any outage a publish is retried across.',
      ),

    publishWindow: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(DEFAULT_PUBLISH_WINDOW)
      .describe('Persistent publishes in flight (sent, not yet acknowledged by the server) per bus; beyond it callers wait.'),
    publishResendMs: z
      .number()
      .int()
      .min(0)
      .default(DEFAULT_PUBLISH_RESEND_MS)
      .describe(
        'A persistent publish not acknowledged after this long is sent again (same Nats-Msg-Id, so stored once), then after twice as long, ' +
          'and so on within its timeout: recovers messages a stream leader took with it when it died. 0 turns resending off.',
      ),

    pullBatch: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(DEFAULT_PULL_BATCH)
      .describe('Messages requested per pull; the next pull is sent when half of it has arrived, so the pipe never idles.'),
    pullExpiresMs: z
      .number()
      .int()
      .min(1_000)
      .default(DEFAULT_PULL_EXPIRES_MS)
      .describe(
        'How long one pull request waits on the server for messages before it is renewed (JetStream `expires`). ' +
          'Messages are delivered as soon as they are stored, so this adds no latency; it sets how often an idle consumer renews.',
      ),
    idleHeartbeatMs: z
      .number()
      .int()
      .min(100)
      .default(DEFAULT_IDLE_HEARTBEAT_MS)
      .describe('Server heartbeat on an idle pull; two missed ones make the consumer check itself and pull again.'),
    maxAckPending: positiveInt
      .optional()
      .describe('JetStream max_ack_pending of the durable consumers; default: the subscription\'s maxInFlight.'),
    ackWaitMs: positiveInt
      .default(DEFAULT_ACK_WAIT_MS)
      .describe('JetStream ack_wait: a delivered message not settled within this time is redelivered. Keep it above the slowest handler (with in-process retries).'),
    fastBatches: z
      .boolean()
      .default(true)
      .describe(
        'On nats-server 2.14+, streams this adapter creates allow fast-ingest batches (`allow_batched`), and a publishBatch of 32 or more ' +
          'messages goes as one flow-controlled batch (acknowledged every few hundred messages, dedupe by event id kept). false: per-message acks only.',
      ),
    memberTtlMs: z
      .number()
      .int()
      .min(3_000)
      .default(6_000)
      .describe(
        'Partitioned groups: a member writes its presence to the `busline-groups` KV bucket every third of this; one not heard of for this long ' +
          'counts as gone and its partitions are spread over the others (they consume once its pins lapse; see "Partitioned consumer groups").',
      ),
    ackMode: z
      .enum(['explicit', 'cumulative'])
      .default('explicit')
      .describe(
        '`explicit`: each message is acknowledged on its own (AckPolicy explicit); safe with any number of members per group. ' +
          '`cumulative`: AckPolicy all, one acknowledgement covers every message up to the watermark of settled ones (fewer acks, ' +
          'faster); one bus at a time per (topic, group): a second member is refused at subscribe (UNSUPPORTED). Applies to consumers this adapter creates; ' +
          'an existing consumer keeps its ack policy and is acknowledged accordingly.',
      ),
  })
  .strict()
  .superRefine((c, ctx) => {
    const auth = [c.user !== undefined, c.token !== undefined, c.credsFile !== undefined, c.nkeySeed !== undefined].filter(Boolean).length;
    if (auth > 1) ctx.addIssue({ code: 'custom', path: ['user'], message: 'set at most one of user/pass, token, credsFile, nkeySeed' });
    if (c.pass !== undefined && c.user === undefined) ctx.addIssue({ code: 'custom', path: ['pass'], message: 'pass needs user' });
    if (c.idleHeartbeatMs * 2 > c.pullExpiresMs) {
      ctx.addIssue({ code: 'custom', path: ['idleHeartbeatMs'], message: 'idleHeartbeatMs must be at most half of pullExpiresMs' });
    }
  })
  .describe('NATS JetStream adapter (@busline/adapter-nats).');

/** The parsed section (defaults applied). */
export type NatsConfig = z.output<typeof natsConfigSchema>;
/** What a user may write (every field optional). */
export type NatsConfigInput = z.input<typeof natsConfigSchema>;

/**
 * Turns `nats://[user:pass@]host[:port][,host2[:port]...]` into a config
 * section: the servers without credentials, and the credentials as
 * `user`/`pass` (or `token` when only a user part is given, the NATS
 * convention `nats://token@host`). `tls://host:port` is the same with TLS
 * required (`tls: {}`); plain `host:port` lists are accepted too.
 */
export function sectionFromUrlString(raw: string): Record<string, unknown> {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/]*)@)?([^/?#]*)/i.exec(raw.trim());
  if (!match) return { servers: raw.split(',').map((s) => s.trim()).filter(Boolean) };
  const scheme = match[1]!.toLowerCase();
  const credentials = match[2];
  const hosts = match[3]!.split(',').map((h) => h.trim()).filter(Boolean);
  const serverScheme = scheme === 'tls' ? 'tls' : 'nats';
  const section: Record<string, unknown> = { servers: hosts.map((h) => `${serverScheme}://${h}`) };
  if (credentials !== undefined && credentials !== '') {
    const colon = credentials.indexOf(':');
    if (colon < 0) section.token = decodeURIComponent(credentials);
    else {
      section.user = decodeURIComponent(credentials.slice(0, colon));
      section.pass = decodeURIComponent(credentials.slice(colon + 1));
    }
  }
  if (scheme === 'tls') section.tls = {};
  return section;
}

/** `AdapterModule.sectionFromUrl`: see `sectionFromUrlString`. */
export const sectionFromUrl = sectionFromUrlString;
