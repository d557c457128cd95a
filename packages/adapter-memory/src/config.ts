import { z } from 'zod';

/** The broker `memory://` (no name) and a `memory` section without `broker` share. */
export const DEFAULT_BROKER_NAME = 'default';
/** Two minutes, like the default NATS JetStream duplicate window. */
export const DEFAULT_DEDUPE_WINDOW_MS = 120_000;
/** Most messages per delivery to a member, by default. */
export const DEFAULT_DELIVERY_BATCH_SIZE = 256;
/** NATS's default max_payload; Kafka's default message.max.bytes is about the same. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** The `memory` section of a busline config (also what `memory://<broker>` turns into). */
export const memoryConfigSchema = z
  .object({
    broker: z
      .string()
      .min(1)
      .max(200)
      .default(DEFAULT_BROKER_NAME)
      .describe(
        'Name of the process-wide in-memory broker to use. Buses in one process that name the same broker ' +
          'exchange messages (two services in one test); different names are fully isolated.',
      ),
    dedupeWindowMs: z
      .number()
      .int()
      .min(0)
      .default(DEFAULT_DEDUPE_WINDOW_MS)
      .describe(
        'Messages published to a topic with an event id (`ce-id`, in either content mode) already seen on that topic within this many ' +
          'milliseconds are stored once. 0 turns deduplication off for this bus.',
      ),
    deliveryBatchSize: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(DEFAULT_DELIVERY_BATCH_SIZE)
      .describe('Most messages handed to a consumer in one batch (also bounded by the consumer\'s maxInFlight).'),
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .default(DEFAULT_MAX_MESSAGE_BYTES)
      .describe(
        'Largest message (body plus headers) a publish may store; larger ones fail with MESSAGE_TOO_LARGE, as on ' +
          'NATS and Kafka, so a message that works in development also fits in production.',
      ),
  })
  .strict()
  .describe('In-memory broker adapter (@busline/adapter-memory): process-local, not durable across restarts.');

/** The parsed section (defaults applied). */
export type MemoryConfig = z.output<typeof memoryConfigSchema>;
/** What a user may write (every field optional). */
export type MemoryConfigInput = z.input<typeof memoryConfigSchema>;
