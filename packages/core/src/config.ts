import type { MeterProvider, TextMapPropagator, TracerProvider } from '@opentelemetry/api';
import { z } from 'zod';
import { contentModeSchema, DEFAULT_CONTENT_MODE } from './content-mode.js';
import { ConfigError } from './errors.js';
import { isLogger, type Logger } from './logger.js';
import { retryOptionsSchema } from './retry.js';
import { mismatchActionSchema, topicStrategySchema } from './topic-provisioner.js';
import { topicNameSchema, topicOptionsSchema } from './topic.js';

/**
 * The adapter types core knows the package of (see ADAPTER_PACKAGES); other types need `{ adapter
 * }`.
 */
export const ADAPTER_TYPES = ['memory', 'nats', 'kafka'] as const;
/** One of the adapter types core can load by name. */
export type AdapterType = (typeof ADAPTER_TYPES)[number];

/** The npm package that implements each adapter type. */
export const ADAPTER_PACKAGES: Record<AdapterType, string> = {
  memory: '@busline/adapter-memory',
  nats: '@busline/adapter-nats',
  kafka: '@busline/adapter-kafka',
};

/** The group of subscriptions when neither they nor the config name one; services that share it split each other's messages. */
export const DEFAULT_GROUP = 'default';

/** Valid consumer group names: safe as NATS consumer names and Kafka group ids alike. */
export const groupNameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_-]+$/, 'group names may only contain letters, digits, "_" and "-"');

/** The config's `subscription` section: defaults every subscribe call starts from. */
export const subscriptionDefaultsSchema = z
  .object({
    /** Handlers running at once per subscription. */
    concurrency: z.number().int().positive().default(64),
    /** Messages delivered but not yet settled per subscription (NATS max_ack_pending, Kafka fetch budget). */
    maxInFlight: z.number().int().positive().default(1_000),
    /** `key`: same aggregate id in publish order. `none`: no ordering. */
    ordering: z.enum(['key', 'none']).default('key'),
    /** Where a group with no stored position starts. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
  })
  .strict();

/**
 * The config's `health` section: when a subscription counts as stalled, and the optional watcher.
 */
export const healthConfigSchema = z
  .object({
    /** A subscription holding messages with none settled for this long is `stalled`. */
    stalledAfterMs: z.number().int().positive().default(60_000),
    /**
     * Checks health on a timer every this many ms and emits `health` events
     * when a subscription stalls or recovers, or its backlog crosses
     * `backlogThreshold`. 0 (default): no timer.
     */
    checkIntervalMs: z.number().int().nonnegative().default(0),
    /** Backlog (pending + unsettled, from the broker) above which a subscription is reported over it. */
    backlogThreshold: z.number().int().positive().optional(),
  })
  .strict();

const providerSchema = <T>(name: string, method: string) =>
  z.custom<T>((v) => typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)[method] === 'function', `${name} must have a ${method}() method`);

/** The config's `telemetry` section: OpenTelemetry metrics and tracing, off by default. */
export const telemetryConfigSchema = z
  .object({
    /** OpenTelemetry metrics (messaging semantic conventions) through `@opentelemetry/api`. Off: no cost per message. */
    metrics: z.boolean().default(false),
    /** Producer and consumer spans, trace context in message headers. Off: no cost per message. */
    tracing: z.boolean().default(false),
    /**
     * How many durations a second each OpenTelemetry histogram series records
     * at most (one series per topic, or topic and group, and instrument):
     * below that rate every one, above it a random share (the SDK spends
     * ~1.6 µs on each record, three per handled message). `'all'` records every
     * one. Counters count every message either way; `addMetricsRecorder`
     * recorders (Prometheus) see every duration.
     */
    durationSamplesPerSecond: z.union([z.number().positive(), z.literal('all')]).default(1_000),
    /** Default: the global one (`metrics.getMeterProvider()`), registered by the OpenTelemetry SDK. */
    meterProvider: providerSchema<MeterProvider>('meterProvider', 'getMeter').optional(),
    /** Default: the global one (`trace.getTracerProvider()`). */
    tracerProvider: providerSchema<TracerProvider>('tracerProvider', 'getTracer').optional(),
    /** Default: the global propagator (`propagation`; W3C trace context once the SDK registers it). */
    propagator: providerSchema<TextMapPropagator>('propagator', 'inject').optional(),
  })
  .strict();

/**
 * The whole bus config as `createEventBus` validates it (each adapter validates its own section).
 */
export const busConfigSchema = z
  .object({
    /** `memory` | `nats` | `kafka`, or a third-party adapter's type (passed to createEventBus as `adapter`). */
    type: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/, 'type must be lower-case letters, digits and "-" (memory, nats, kafka, or your adapter\'s type)')
      .optional(),
    /** `memory://`, `nats://host:4222[,host2:4222]`, `kafka://host:9092[,host2:9092]`. */
    url: z.string().optional(),
    /** CloudEvents `source` of events this service publishes. */
    source: z.string().min(1).default('busline'),
    /** Default consumer group for subscriptions that name none (usually the service name). */
    group: groupNameSchema.default(DEFAULT_GROUP),
    /**
     * How events are laid out on messages of every topic whose options set no
     * `contentMode`: `binary` (CloudEvents attributes as headers, the default)
     * or `structured` (the whole event as JSON in the body, one header).
     */
    contentMode: contentModeSchema.default(DEFAULT_CONTENT_MODE),
    /** Topics ensured at `start()`, with their options. */
    topics: z.record(topicNameSchema, topicOptionsSchema).default({}),
    topicStrategy: topicStrategySchema.default('createOnly'),
    onMismatch: mismatchActionSchema.default('warn'),
    publish: z
      .object({
        /** A publish not acknowledged within this time rejects with PUBLISH_TIMEOUT. */
        timeoutMs: z.number().int().positive().default(10_000),
        /** Messages handed to the broker and not yet acknowledged, across the bus; beyond it publishes wait. */
        maxInFlight: z.number().int().positive().default(10_000),
        /** Messages waiting for room in that window; beyond it a publish rejects at once with PUBLISH_QUEUE_FULL. */
        maxWaiting: z.number().int().positive().default(20_000),
      })
      .strict()
      .default({ timeoutMs: 10_000, maxInFlight: 10_000, maxWaiting: 20_000 }),
    /** Handlers running at once across every subscription of this bus. */
    concurrency: z.number().int().positive().default(256),
    /** Messages accepted by the ordering pool but not finished, across the bus; beyond it fetching waits. */
    maxPending: z.number().int().positive().default(20_000),
    subscription: subscriptionDefaultsSchema.default(subscriptionDefaultsSchema.parse({})),
    retry: retryOptionsSchema.default(retryOptionsSchema.parse({})),
    /** Dead-letter topic name = topic + suffix; `false` disables dead-lettering (exhausted messages are dropped with an error event). */
    deadLetterSuffix: z.union([z.string().regex(/^[A-Za-z0-9._-]+$/), z.literal(false)]).default('.dlq'),
    closeTimeoutMs: z.number().int().positive().default(30_000),
    /** Where core (and adapters) log; default: warnings and errors to the console. `false`: nothing. */
    logger: z.union([z.custom<Logger>(isLogger, 'logger must have debug, info, warn and error methods'), z.literal(false)]).optional(),
    health: healthConfigSchema.default(healthConfigSchema.parse({})),
    telemetry: telemetryConfigSchema.default(telemetryConfigSchema.parse({})),
    memory: z.unknown().optional(),
    nats: z.unknown().optional(),
    kafka: z.unknown().optional(),
  })
  .strict();

/**
 * Each adapter package adds the input type of its config section here, by
 * module augmentation, once its types are part of the program (an import of
 * the adapter, or `import type {} from '@busline/adapter-nats'`):
 *
 * ```ts
 * declare module '@busline/core' {
 *   interface AdapterConfigs { nats: NatsConfigInput }
 * }
 * ```
 * A section no adapter typed stays `unknown` (and is checked at run time).
 */
export interface AdapterConfigs {}

/** What `createEventBus` takes: core's fields, and each adapter's section as that adapter types it. */
export type BusConfigInput = Omit<z.input<typeof busConfigSchema>, 'memory' | 'nats' | 'kafka'> & {
  [K in Exclude<'memory' | 'nats' | 'kafka', keyof AdapterConfigs>]?: unknown;
} & { [K in keyof AdapterConfigs]?: AdapterConfigs[K] };
/** The validated config a bus runs with (defaults filled in, `type` resolved). */
export type BusConfig = z.output<typeof busConfigSchema> & { type: string };
/** The `subscription` section after defaults: what a subscribe call without options gets. */
export type SubscriptionDefaults = z.output<typeof subscriptionDefaultsSchema>;

/**
 * One readable line per zod issue (`path: message`), for ConfigError instead of zod's JSON dump.
 */
export function formatZodIssues(error: z.ZodError, prefix = ''): string[] {
  return error.issues.map((i) => {
    const path = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
    return `${path || '(root)'}: ${i.message}`;
  });
}

/** URL schemes that name an adapter other than by its type: `tls://` is NATS with TLS (the NATS convention). */
const SCHEME_ALIASES: Readonly<Record<string, AdapterType>> = { tls: 'nats' };

/**
 * Reads the scheme of the URL shorthand (the adapter parses the rest: host
 * lists like `kafka://a:9092,b:9092` are not WHATWG URLs), or says what is wrong.
 */
export function parseBusUrl(url: string, customType?: string): { type: string; url: string } | string {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url.trim());
  if (!match) return `url: "${url}" is not a URL; use memory://, nats://host:4222 or kafka://host:9092`;
  const scheme = match[1]!.toLowerCase();
  const type = SCHEME_ALIASES[scheme] ?? scheme;
  if (!(ADAPTER_TYPES as readonly string[]).includes(type) && type !== customType) {
    return `url: scheme "${type}:" is not one of ${[...ADAPTER_TYPES, ...Object.keys(SCHEME_ALIASES)].map((t) => `${t}://`).join(', ')}`;
  }
  if (/\s/.test(match[2]!)) return `url: "${url}" contains whitespace`;
  return { type, url: url.trim() };
}

/**
 * Reads a bus config from environment variables, so a service swaps brokers
 * without a code change:
 * - `BUSLINE_URL` (e.g. `nats://127.0.0.1:4222`), or `BUSLINE_TYPE`
 * - `BUSLINE_SOURCE`, `BUSLINE_GROUP`, `BUSLINE_TOPIC_STRATEGY`, `BUSLINE_ON_MISMATCH`, `BUSLINE_CONTENT_MODE`,
 *   `BUSLINE_PUBLISH_TIMEOUT_MS`, `BUSLINE_CONCURRENCY`
 * - `BUSLINE_CONFIG`: a JSON object merged underneath (any field, adapter sections too)
 * Defaults to the in-memory broker when nothing is set.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): BusConfigInput {
  let base: Record<string, unknown> = {};
  if (env.BUSLINE_CONFIG) {
    try {
      base = JSON.parse(env.BUSLINE_CONFIG) as Record<string, unknown>;
    } catch (cause) {
      throw new ConfigError('invalid config from environment', [`BUSLINE_CONFIG: not valid JSON (${(cause as Error).message})`]);
    }
  }
  const set = (key: string, value: unknown) => {
    if (value !== undefined && value !== '') base[key] = value;
  };
  const num = (name: string): number | undefined => (env[name] === undefined || env[name] === '' ? undefined : Number(env[name]));
  set('url', env.BUSLINE_URL);
  set('type', env.BUSLINE_TYPE);
  set('source', env.BUSLINE_SOURCE);
  set('group', env.BUSLINE_GROUP);
  set('topicStrategy', env.BUSLINE_TOPIC_STRATEGY);
  set('onMismatch', env.BUSLINE_ON_MISMATCH);
  set('contentMode', env.BUSLINE_CONTENT_MODE);
  set('concurrency', num('BUSLINE_CONCURRENCY'));
  const timeout = num('BUSLINE_PUBLISH_TIMEOUT_MS');
  if (timeout !== undefined) base.publish = { ...(base.publish as object | undefined), timeoutMs: timeout };
  if (base.url === undefined && base.type === undefined) base.type = 'memory';
  return base as BusConfigInput;
}
