import { z } from 'zod';
import { contentModeSchema } from './content-mode.js';
import { ErrorCode, TopicError } from './errors.js';

/**
 * The longest name every adapter can carry: Kafka allows 249 characters, and a
 * NATS stream name derived from the topic must stay a valid file name; the
 * dead-letter suffix ".dlq" must still fit.
 */
export const MAX_TOPIC_LENGTH = 200;

/**
 * Letters, digits and `.`, `_`, `-`. That is the intersection of what Kafka
 * topics (`[a-zA-Z0-9._-]`) and NATS subjects (no whitespace, no `*`, `>`)
 * accept, so a topic valid here is valid on every adapter.
 */
const TOPIC_PATTERN = /^[A-Za-z0-9._-]+$/;

/** Returns why `name` is not a valid topic, or undefined when it is. */
export function topicNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `must be a string, got ${typeof name}`;
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_TOPIC_LENGTH) return `is ${name.length} characters; at most ${MAX_TOPIC_LENGTH} are allowed`;
  if (/\s/.test(name)) return 'must not contain whitespace';
  if (/[*>]/.test(name)) return 'must not contain the wildcards "*" or ">"';
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..'))
    return 'must not start or end with "." or contain ".." (empty subject token)';
  if (!TOPIC_PATTERN.test(name)) return 'may only contain letters, digits, ".", "_" and "-"';
  return undefined;
}

/** Throws TopicError (TOPIC_INVALID) unless `name` is a topic name every broker accepts. */
export function assertTopicName(name: unknown): asserts name is string {
  const problem = topicNameProblem(name);
  if (problem !== undefined) {
    const shown = typeof name === 'string' ? JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name) : String(name);
    throw new TopicError(ErrorCode.TopicInvalid, String(name), `invalid topic name ${shown}: ${problem}`);
  }
}

/** Validates a topic name (see assertTopicName). */
export const topicNameSchema = z.string().superRefine((name, ctx) => {
  const problem = topicNameProblem(name);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `topic name ${problem}` });
});

const positiveInt = z.number().int().positive();

/** Validates topic options: persistence, retention and size limits, replicas, partitions, content mode. */
export const topicOptionsSchema = z
  .object({
    /** `persistent` topics keep messages for groups that subscribe later; `ephemeral` ones are at-most-once fan-out. */
    persistence: z.enum(['persistent', 'ephemeral']).default('persistent'),
    /** How long the broker keeps a message, in milliseconds. */
    retentionMs: positiveInt.optional(),
    /** Oldest messages are discarded beyond this many. */
    maxMessages: positiveInt.optional(),
    /** Oldest messages are discarded beyond this many bytes. */
    maxBytes: positiveInt.optional(),
    replicas: positiveInt.optional(),
    /** Partitions: Kafka partitions, NATS partitioned consumer groups (server ≥ 2.11); adapters without partitions report 1. */
    partitions: positiveInt.optional(),
    description: z.string().max(1024).optional(),
    /**
     * How events published to this topic are laid out: `binary` (CloudEvents
     * attributes as headers) or `structured` (the whole event as JSON in the
     * body). Default: the bus config's `contentMode`. Not a broker setting:
     * consumers read both modes, so it can change at any time.
     */
    contentMode: contentModeSchema.optional(),
  })
  .strict();

/** Topic options as written (each optional). */
export type TopicOptionsInput = z.input<typeof topicOptionsSchema>;
/** Topic options after defaults. */
export type TopicOptions = z.output<typeof topicOptionsSchema>;

/** The fields a provisioner compares between wanted and actual settings. */
export const COMPARED_TOPIC_FIELDS = [
  'persistence',
  'retentionMs',
  'maxMessages',
  'maxBytes',
  'replicas',
  'partitions',
  'description',
] as const satisfies readonly (keyof TopicOptions)[];

/**
 * What a driver reports a broker actually has. A field the broker cannot
 * represent is left out (and so never compared); `null` means "unlimited".
 */
export type TopicState = { [K in keyof TopicOptions]?: TopicOptions[K] | null };

/**
 * Appended to a topic's name to name its dead-letter topic (`orders` → `orders.dlq`) unless the
 * config sets another suffix.
 */
export const DEFAULT_DEAD_LETTER_SUFFIX = '.dlq';
