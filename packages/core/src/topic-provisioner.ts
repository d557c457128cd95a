import { z } from 'zod';
import { ErrorCode, errorCode, TopicError, TopicMismatchError, type FieldDifference } from './errors.js';
import type { Driver } from './driver.js';
import { COMPARED_TOPIC_FIELDS, type TopicOptions, type TopicState } from './topic.js';

/** Validates `topicStrategy` (see TopicStrategy). */
export const topicStrategySchema = z.enum(['createOnly', 'createOrUpdate', 'validateOnly', 'skip']);
/**
 * - `createOnly` (production): create missing topics, never modify existing ones.
 * - `createOrUpdate` (development): create, and bring existing ones to the wanted options.
 * - `validateOnly` (staging): never create or modify; a missing topic is an error.
 * - `skip`: no broker call at run time.
 */
export type TopicStrategy = z.infer<typeof topicStrategySchema>;
/** Validates `onMismatch` (see MismatchAction). */
export const mismatchActionSchema = z.enum(['warn', 'fail', 'ignore']);
/**
 * What to do when an existing topic differs from the wanted options: `warn` (event and log, carry
 * on), `fail` (TopicMismatchError), `ignore`.
 */
export type MismatchAction = z.infer<typeof mismatchActionSchema>;

/** What ensuring a topic did. */
export type EnsureAction = 'created' | 'updated' | 'verified' | 'skipped' | 'mismatch';
/** What ensuring a topic did, and the differences it found. */
export interface EnsureResult {
  /** What was done to the topic. */
  action: EnsureAction;
  /** Wanted vs actual for every field that differs (empty unless `mismatch` or `updated`). */
  differences: FieldDifference[];
}

/** How topics are provisioned: the strategy and the mismatch action. */
export interface ProvisionPolicy {
  /** See TopicStrategy. */
  strategy: TopicStrategy;
  /** See MismatchAction. */
  onMismatch: MismatchAction;
}

/** The topic calls of a driver the provisioner uses. */
export type TopicAdmin = Pick<Driver, 'describeTopic' | 'createTopic' | 'updateTopic'>;

/** Every compared field the caller set that the broker reports differently. */
export function diffTopic(wanted: TopicOptions, actual: TopicState): FieldDifference[] {
  const differences: FieldDifference[] = [];
  for (const field of COMPARED_TOPIC_FIELDS) {
    const w = wanted[field];
    if (w === undefined || !(field in actual)) continue;
    const a = actual[field];
    if (a !== w) differences.push({ field, wanted: w, actual: a ?? null });
  }
  return differences;
}

/**
 * Decides, once per topic, whether to create, update, verify or skip it, from
 * the wanted options and what the driver reports the broker has. Results are
 * cached, and concurrent first uses of a topic share one broker round trip
 * (single-flight), so the publish path makes no admin calls after the first.
 */
export class TopicProvisioner {
  private readonly ensured = new Set<string>();
  private readonly inflight = new Map<string, Promise<EnsureResult>>();

  constructor(
    private readonly admin: TopicAdmin,
    private readonly defaults: ProvisionPolicy,
    /** Called for `warn` mismatches (the bus turns it into a `topicMismatch` event). */
    private readonly warn: (topic: string, differences: FieldDifference[]) => void,
  ) {}

  /** True once `topic` was ensured (the hot-path check: a Set lookup). */
  isEnsured(topic: string): boolean {
    return this.ensured.has(topic);
  }

  /**
   * Ensures `topic` once; later calls resolve from the cache. With `force`, the
   * decision runs again (after any in-flight one), e.g. for `configureTopic`.
   */
  ensure(topic: string, wanted: TopicOptions, policy: Partial<ProvisionPolicy> = {}, force = false): Promise<EnsureResult> {
    if (!force && this.ensured.has(topic)) return Promise.resolve({ action: 'verified', differences: [] });
    const running = this.inflight.get(topic);
    if (running && !force) return running;
    const start = running ? running.catch(() => undefined).then(() => this.decide(topic, wanted, policy)) : this.decide(topic, wanted, policy);
    const flight = start.then(
      (result) => {
        this.ensured.add(topic);
        return result;
      },
      (error: unknown) => {
        // A failed decision is not cached: the next use asks the broker again.
        this.ensured.delete(topic);
        throw error;
      },
    );
    const tracked = flight.finally(() => {
      if (this.inflight.get(topic) === tracked) this.inflight.delete(topic);
    });
    this.inflight.set(topic, tracked);
    return tracked;
  }

  /** Forgets that `topic` was ensured, so the next use checks it with the broker again. */
  forget(topic: string): void {
    this.ensured.delete(topic);
  }

  private async decide(topic: string, wanted: TopicOptions, override: Partial<ProvisionPolicy>): Promise<EnsureResult> {
    const strategy = override.strategy ?? this.defaults.strategy;
    const onMismatch = override.onMismatch ?? this.defaults.onMismatch;
    if (strategy === 'skip') return { action: 'skipped', differences: [] };

    const actual = await this.admin.describeTopic(topic, wanted);
    if (actual === undefined) {
      if (strategy === 'validateOnly') {
        throw new TopicError(
          ErrorCode.TopicNotFound,
          topic,
          `topic "${topic}" does not exist and strategy validateOnly never creates topics; create it, or use createOnly`,
        );
      }
      try {
        await this.admin.createTopic(topic, wanted);
      } catch (error) {
        // Created, but without some fields the broker cannot honour (e.g. NATS partitions on an old server).
        if (errorCode(error) !== ErrorCode.TopicMismatch || onMismatch === 'fail') throw error;
        return this.mismatch(topic, (error as TopicMismatchError).differences ?? [], onMismatch);
      }
      return { action: 'created', differences: [] };
    }

    const differences = diffTopic(wanted, actual);
    if (differences.length === 0) return { action: 'verified', differences };
    if (strategy === 'createOrUpdate') {
      try {
        await this.admin.updateTopic(topic, wanted, differences);
        return { action: 'updated', differences };
      } catch (error) {
        // The broker refused some fields (e.g. fewer Kafka partitions): those are the mismatch.
        // By code, not instanceof: the driver may have been built against another copy of core.
        if (errorCode(error) !== ErrorCode.TopicMismatch) throw error;
        // The broker's refusal says why (e.g. "cannot have fewer partitions"): keep it when failing.
        if (onMismatch === 'fail') throw error;
        return this.mismatch(topic, (error as TopicMismatchError).differences ?? differences, onMismatch);
      }
    }
    return this.mismatch(topic, differences, onMismatch);
  }

  private mismatch(topic: string, differences: FieldDifference[], action: MismatchAction): EnsureResult {
    if (action === 'fail') throw new TopicMismatchError(topic, differences);
    if (action === 'warn') this.warn(topic, differences);
    return { action: 'mismatch', differences };
  }
}
