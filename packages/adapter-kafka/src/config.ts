import { z } from 'zod';

/** Kafka's port when a broker address names none. */
export const DEFAULT_KAFKA_PORT = 9092;

const brokerAddress = z
  .string()
  .regex(/^[^\s,/]+:\d{1,5}$/, 'a broker address is "host:port", e.g. "127.0.0.1:9092"');

const positiveInt = z.number().int().positive();

/**
 * SASL options, passed to kafkajs unchanged. They are never logged: the
 * driver logs no configuration, and kafkajs log entries are redacted.
 */
const saslSchema = z.union([
  z
    .object({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: z.string(),
      password: z.string(),
    })
    .strict(),
  z
    .object({
      mechanism: z.literal('oauthbearer'),
      /**
       * Supplies an OAUTHBEARER token when kafkajs asks for one (mechanism `oauthbearer`), so
       * tokens can be refreshed without a new bus.
       */
      oauthBearerProvider: z.custom<() => Promise<{ value: string }>>((v) => typeof v === 'function', {
        message: 'oauthBearerProvider must be a function returning a promise of { value: token }',
      }),
    })
    .strict(),
  z
    .object({
      mechanism: z.literal('aws'),
      authorizationIdentity: z.string(),
      accessKeyId: z.string(),
      secretAccessKey: z.string(),
      sessionToken: z.string().optional(),
    })
    .strict(),
]);

/** TLS: `true` for the system's CAs, or Node `tls.connect` options (ca, cert, key, servername, ...). */
const sslSchema = z.union([z.boolean(), z.record(z.string(), z.unknown())]);

export const producerConfigSchema = z
  .object({
    client: z
      .enum(['kafkajs', 'kafka-ts'])
      .default('kafka-ts')
      .describe(
        'The client library that sends published batches (the consumer and topic admin always use kafkajs). "kafka-ts" ' +
          'publishes several times faster (README, "The producer client") and is always idempotent with acks "all", ' +
          'uncompressed, one batch in flight; "kafkajs" also offers the other acks, gzip and more batches in flight.',
      ),
    idempotent: z
      .boolean()
      .default(true)
      .describe(
        'The idempotent producer: the broker drops duplicates that kafkajs retries create, so a retried batch is ' +
          'stored once and in order. It dedupes producer retries only, not a second publish of the same event. Needs acks "all".',
      ),
    acks: z
      .enum(['all', 'leader', 'none'])
      .default('all')
      .describe('"all" (-1): every in-sync replica has the batch before a publish resolves. "leader" (1), "none" (0) are faster and lose more.'),
    lingerMs: z
      .number()
      .min(0)
      .max(1_000)
      .default(2)
      .describe(
        'How long the publish batcher waits for more publishes before sending a batch when no batch is in flight. ' +
          'While a batch is in flight, publishes gather anyway until it is acknowledged.',
      ),
    maxBatchMessages: positiveInt.default(10_000).describe('Most messages in one sendBatch request.'),
    maxBatchBytes: positiveInt
      .default(900_000)
      .describe('Most bytes (keys, values, headers, estimated record overhead) in one sendBatch request; keep below the broker\'s message.max.bytes.'),
    maxInFlightBatches: z
      .number()
      .int()
      .min(1)
      .max(5)
      .default(1)
      .describe(
        'sendBatch requests outstanding at once. 1 keeps per-key order across retries under every failure; more ' +
          'overlaps round trips, but a batch that fails after a later one succeeded lands out of order.',
      ),
    maxQueuedMessages: positiveInt
      .default(100_000)
      .describe('Publishes waiting for a batch beyond which further publish calls wait for room (backpressure).'),
    compression: z.enum(['none', 'gzip']).default('none').describe('Batch compression (kafkajs ships gzip; others need codecs).'),
    retries: z
      .number()
      .int()
      .min(0)
      .default(40)
      .describe(
        'Retries of a failing batch (with backoff from `retry`) before its publishes fail; 40 is about 38 s, beyond a leader ' +
          'election after a broker dies. The publish timeout still applies. With kafka-ts also the retries of reaching a broker before anything is sent.',
      ),
  })
  .strict();

export const consumerConfigSchema = z
  .object({
    sessionTimeoutMs: positiveInt.default(30_000).describe('Group session timeout: a member silent this long is removed and its partitions reassigned.'),
    heartbeatIntervalMs: positiveInt.default(3_000).describe('Heartbeat interval; about a third of sessionTimeoutMs.'),
    rebalanceTimeoutMs: positiveInt.default(60_000).describe('How long the coordinator waits for members to rejoin during a rebalance.'),
    partitionsConsumedConcurrently: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(4)
      .describe('kafkajs eachBatch calls running at once. Batches are handed to core\'s pool and handled in parallel regardless.'),
    commitIntervalMs: positiveInt
      .default(1_000)
      .describe('How often handled offsets (per partition, up to the ack watermark) are committed; also committed on rebalance, restart and close.'),
    attemptWindowRecords: positiveInt
      .default(2_000)
      .describe(
        'How many records past those delivered a partition\'s commit marks as possibly begun (README, "Poison across restarts"). ' +
          'After a crash the next owner handles that many (and those handled but not committed) one at a time, committing after each; ' +
          'keep it at least twice the subscriptions\' maxInFlight, or deliveries wait for commits more often.',
      ),
    maxBytesPerPartition: positiveInt.default(1_048_576).describe('Most bytes fetched per partition per fetch.'),
    maxBytes: positiveInt.default(10_485_760).describe('Most bytes per fetch response.'),
    maxBufferedBytes: positiveInt
      .default(32 * 1024 * 1024)
      .describe(
        'Fetched records not yet handed to handlers, across the partitions of one consumer (approximate; one more ' +
          'fetch may arrive on top). Each partition keeps fetching ahead while it holds less than its share.',
      ),
    maxWaitTimeMs: positiveInt
      .default(100)
      .describe('Fetch long-poll time; also how long a consumer whose partitions are all paused sleeps before it looks again.'),
    idleFetchWaitMs: positiveInt
      .default(1_000)
      .describe(
        'Fetch long-poll time while idle: after a fetch from a broker came back empty and no partition is paused. ' +
          'The broker answers as soon as a record arrives, so it adds no latency; it sets what an idle consumer costs ' +
          '(one fetch per broker per wait) and how late an idle member may notice a rebalance. Below maxWaitTimeMs it has no effect.',
      ),
    restartDrainTimeoutMs: positiveInt
      .default(30_000)
      .describe(
        'A controlled consumer restart (subscribing a new topic after start) waits this long for delivered messages ' +
          'to be handled before committing and rejoining; messages still running are then left uncommitted (redelivered).',
      ),
  })
  .strict();

export const topicDefaultsSchema = z
  .object({
    partitions: positiveInt
      .optional()
      .describe('Partitions for topics busline creates without a `partitions` option; default: the broker\'s num.partitions.'),
    replicationFactor: positiveInt
      .optional()
      .describe('Replication factor for created topics without a `replicas` option; default: the broker\'s default.replication.factor.'),
    ephemeralRetentionMs: positiveInt
      .default(60_000)
      .describe(
        'Kafka has no at-most-once fan-out: an "ephemeral" topic is a topic with this retention (unless retentionMs is set) ' +
          'whose consumers start at the end of the log.',
      ),
  })
  .strict();

/** The `kafka` section of a busline config (also what `kafka://host:9092,host2:9092` turns into). */
export const kafkaConfigSchema = z
  .object({
    brokers: z.array(brokerAddress).min(1).describe('Bootstrap brokers, "host:port".'),
    clientId: z.string().min(1).default('busline').describe('kafkajs client id (shows in broker logs and quotas).'),
    ssl: sslSchema.optional().describe('TLS: true, or Node tls.connect options. Passed through (to kafkajs and kafka-ts), never logged.'),
    sasl: saslSchema.optional().describe('SASL authentication (plain, scram-sha-256/512, oauthbearer, aws). Passed through, never logged.'),
    connectionTimeoutMs: positiveInt.default(3_000).describe('TCP/TLS connect timeout per broker.'),
    requestTimeoutMs: positiveInt.default(30_000).describe('Timeout of one broker request.'),
    connectRetries: z
      .number()
      .int()
      .min(0)
      .default(2)
      .describe(
        'Retries of the first connection (in start()) before it fails with BROKER_UNAVAILABLE; each attempt waits up to ' +
          'connectionTimeoutMs. Raise it to wait for a broker that is still starting; later reconnects follow `retry`.',
      ),
    retry: z
      .object({
        retries: z.number().int().min(0).default(25),
        initialRetryTimeMs: positiveInt.default(100),
        maxRetryTimeMs: positiveInt.default(1_000),
      })
      .strict()
      .default({ retries: 25, initialRetryTimeMs: 100, maxRetryTimeMs: 1_000 })
      .describe(
        'Backoff of the clients\' reconnects and retried requests (broker restarts, leader changes): from initialRetryTimeMs, ' +
          'doubling up to maxRetryTimeMs. 1 s at most, as the Java client (retry.backoff.max.ms), so publishing and consuming resume ' +
          'within about a second of a broker being back; `retries` bounds the tries of one operation (25: about 22 s).',
      ),
    metadataMaxAgeMs: positiveInt
      .default(300_000)
      .describe(
        'How old the producer\'s and consumers\' cluster metadata may get before they fetch it again. Partitions added ' +
          'to a topic are written to, and assigned in the group (its leader rebalances), only once the metadata is ' +
          'refreshed: within about this long. kafkajs and the Java client (metadata.max.age.ms) default to 5 minutes.',
      ),
    producer: producerConfigSchema.default(producerConfigSchema.parse({})),
    consumer: consumerConfigSchema.default(consumerConfigSchema.parse({})),
    topics: topicDefaultsSchema.default(topicDefaultsSchema.parse({})),
    logLevel: z
      .enum(['nothing', 'error', 'warn', 'info', 'debug'])
      .default('nothing')
      .describe(
        'The Kafka clients\' own log (kafkajs, and kafka-ts when it publishes), handed to the bus\'s logger with ' +
          'SASL/SSL fields redacted. Off by default: kafkajs logs every retried protocol error at ERROR; what matters ' +
          'reaches the bus as events (error, connection). kafka-ts has one log per process: README, "The kafka-ts producer".',
      ),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const issue of kafkaTsConflicts(c)) ctx.addIssue({ code: 'custom', ...issue });
  })
  .describe('Apache Kafka adapter (@busline/adapter-kafka: publishing through kafka-ts or kafkajs, consuming through kafkajs).');

/**
 * Settings the kafka-ts producer cannot honour, each with what to change. It
 * always sends idempotently with acks -1 and without compression, and its
 * retries keep one request per partition (more batches in flight would only
 * queue behind it); SASL "aws" is not among its mechanisms.
 */
function kafkaTsConflicts(c: {
  producer: { client: string; acks: string; idempotent: boolean; compression: string; maxInFlightBatches: number };
  sasl?: { mechanism: string } | undefined;
}): { path: (string | number)[]; message: string }[] {
  if (c.producer.client !== 'kafka-ts') return [];
  const fix = 'or set producer.client: "kafkajs"';
  const issues: { path: (string | number)[]; message: string }[] = [];
  if (c.producer.acks !== 'all') issues.push({ path: ['producer', 'acks'], message: `the kafka-ts producer always waits for acks "all"; remove producer.acks ${fix}` });
  if (!c.producer.idempotent) issues.push({ path: ['producer', 'idempotent'], message: `the kafka-ts producer is always idempotent; remove producer.idempotent: false ${fix}` });
  if (c.producer.compression !== 'none') {
    issues.push({ path: ['producer', 'compression'], message: `the kafka-ts producer sends uncompressed batches; remove producer.compression ${fix}` });
  }
  if (c.producer.maxInFlightBatches !== 1) {
    issues.push({
      path: ['producer', 'maxInFlightBatches'],
      message: `the kafka-ts producer sends one request per broker at a time, so a second batch in flight only waits; use 1 ${fix}`,
    });
  }
  if (c.sasl?.mechanism === 'aws') issues.push({ path: ['sasl', 'mechanism'], message: `kafka-ts has no SASL "aws" mechanism; use another mechanism ${fix}` });
  return issues;
}

/** The `kafka` section after validation and defaults: what the driver runs with. */
export type KafkaConfig = z.output<typeof kafkaConfigSchema>;
/**
 * The `kafka` section as written in a config (defaults optional); `createEventBus` validates it.
 */
export type KafkaConfigInput = z.input<typeof kafkaConfigSchema>;

/**
 * `kafka://host1:9092,host2:9092` → `{ brokers: ['host1:9092', 'host2:9092'] }`.
 * Hosts without a port get 9092; `?clientId=name` sets the client id.
 * Credentials in the URL are refused (never echoed): Kafka has several SASL
 * mechanisms, and guessing one (or sending a password in plain text) would be
 * wrong more often than right; the `sasl` option names it.
 */
export function sectionFromUrl(url: string): Record<string, unknown> {
  // Read the authority from the text: WHATWG URL parsing does not keep a host list.
  const href = url.trim().replace(/^kafka:\/\//i, '');
  const end = href.search(/[/?#]/);
  const authority = end < 0 ? href : href.slice(0, end);
  if (authority.includes('@')) {
    throw new Error(
      'credentials in a kafka:// URL are not used; write the URL without them and set ' +
        "kafka.sasl: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512', username, password } (with kafka.ssl: true unless the listener is local)",
    );
  }
  const hosts = authority;
  const brokers = hosts
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0)
    .map((h) => (/:\d+$/.test(h) ? h : `${h}:${DEFAULT_KAFKA_PORT}`));
  const section: Record<string, unknown> = { brokers };
  const query = href.indexOf('?');
  const clientId = query < 0 ? null : new URLSearchParams(href.slice(query + 1).replace(/#.*$/, '')).get('clientId');
  if (clientId) section.clientId = clientId;
  return section;
}
