/**
 * The options of a subscribe call: their schema, and the bus's defaults
 * applied to them (group, concurrency, ordering, retry policy, where a new
 * group starts, the dead-letter topic), checked once when the subscription is
 * made rather than when the first message needs them.
 */
import { z } from 'zod';
import { formatZodIssues, groupNameSchema, type SubscriptionDefaults } from './config.js';
import type { ConsumerSpec } from './driver.js';
import { BuslineError, ConfigError, ErrorCode } from './errors.js';
import { retryOptionsSchema, type RetryPolicy } from './retry.js';
import { topicNameProblem } from './topic.js';

/** Validates the options of `subscribe`. */
export const subscribeOptionsSchema = z
  .object({
    group: groupNameSchema.optional(),
    concurrency: z.number().int().positive().optional(),
    maxInFlight: z.number().int().positive().optional(),
    ordering: z.enum(['key', 'none']).optional(),
    startFrom: z.enum(['earliest', 'latest']).optional(),
    retry: retryOptionsSchema.partial().optional(),
    /** Where exhausted and malformed messages go; `false` drops them (with an error event). */
    deadLetter: z.union([z.object({ topic: z.string().optional() }).strict(), z.literal(false)]).optional(),
    /**
     * Also handle messages that carry no CloudEvent (no id header in any
     * naming, no structured content type), with an envelope made from the
     * broker's metadata (see `foreignEnvelope`). Default false: they are malformed.
     */
    foreign: z.boolean().optional(),
  })
  .strict();
/**
 * Options of `subscribe`: group, concurrency, ordering, retry, dead letters, where a new group
 * starts.
 */
export type SubscribeOptions = z.input<typeof subscribeOptionsSchema>;

/** A subscription's options with the bus's defaults applied and checked. */
export interface ResolvedSubscription {
  spec: ConsumerSpec;
  concurrency: number;
  ordered: boolean;
  retry: RetryPolicy;
  deadLetterTopic: string | undefined;
  /** Messages without a CloudEvent are handled (with a foreign envelope), not dead-lettered. */
  foreign: boolean;
}

/**
 * Applies the bus's defaults to a subscribe call's options; throws ConfigError with one line per
 * bad option.
 */
export function resolveSubscription(
  topic: string,
  options: SubscribeOptions,
  defaults: { group: string; subscription: SubscriptionDefaults; retry: RetryPolicy; deadLetterSuffix: string | false },
  persistence: ConsumerSpec['persistence'],
): ResolvedSubscription {
  const parsed = subscribeOptionsSchema.safeParse(options);
  // One readable line per bad option rather than zod's JSON dump of its issues.
  if (!parsed.success) throw new ConfigError(`invalid subscribe options for "${topic}"`, formatZodIssues(parsed.error));
  const o = parsed.data;
  const d = defaults.subscription;
  const deadLetterTopic =
    o.deadLetter === false || defaults.deadLetterSuffix === false && o.deadLetter?.topic === undefined
      ? undefined
      : (o.deadLetter?.topic ?? `${topic}${defaults.deadLetterSuffix}`);
  // Checked here, not at the first dead letter: a name the broker refuses would block that message's key forever.
  const problem = deadLetterTopic === undefined ? undefined : topicNameProblem(deadLetterTopic);
  if (problem !== undefined) {
    throw new BuslineError(ErrorCode.ConfigInvalid, `dead-letter topic ${JSON.stringify(deadLetterTopic)} of "${topic}" ${problem}; set deadLetter.topic (or the bus's deadLetterSuffix) to a valid topic name`);
  }
  return {
    spec: {
      topic,
      group: o.group ?? defaults.group,
      persistence,
      maxInFlight: o.maxInFlight ?? d.maxInFlight,
      startFrom: o.startFrom ?? d.startFrom,
    },
    concurrency: o.concurrency ?? d.concurrency,
    ordered: (o.ordering ?? d.ordering) === 'key',
    retry: { ...defaults.retry, ...o.retry },
    deadLetterTopic,
    foreign: o.foreign === true,
  };
}
