import type { Driver, PublishOutcome, WireMessage } from './driver.js';
import { BuslineError, ErrorCode, errorMessage, isBuslineError } from './errors.js';
import type { BusMetrics } from './metrics.js';
import type { PublishAdmission } from './publish-admission.js';
import type { PublishOutcomes } from './publish-outcomes.js';
import type { TopicOptions } from './topic.js';

/** What the pipeline needs from its bus: topic options and the one-time ensure of a topic. */
export interface PublishPipelineHost {
  optionsOf(topic: string): TopicOptions;
  /** Undefined once the topic is ensured (the common case: no promise per publish). */
  ensureTopic(topic: string): Promise<unknown> | undefined;
}

/**
 * The way every encoded message takes from `publish*` to its outcome: counted
 * as publishing, admitted into the publish window (waiting for room within
 * its deadline), handed to the driver once its topic is ensured, then
 * accounted (metrics, window room, outcome events and spans). The Publisher's
 * (publisher.ts) publish methods build and validate the messages; this turns them into
 * outcomes, and never throws for one message's failure.
 */
export class PublishPipeline {
  /** Messages between dispatch and their outcome (waiting for room included). */
  private publishing = 0;
  private idleWaiters: (() => void)[] = [];
  /** Rejections made before a publish reached the driver: they hold no room in the window. */
  private readonly unadmitted = new WeakSet<object>();

  constructor(
    private readonly driver: Driver,
    private readonly host: PublishPipelineHost,
    private readonly admission: PublishAdmission,
    private readonly outcomes: PublishOutcomes,
    private readonly stats: BusMetrics,
    private readonly defaultTimeoutMs: number,
  ) {}

  /** Messages awaiting the broker's acknowledgement, waiting for room included. */
  get inProgress(): number {
    return this.publishing;
  }

  /** Resolves once nothing is publishing. */
  whenIdle(): Promise<void> {
    if (this.publishing === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** One message: resolves with `receipt` once stored, rejects with why not. */
  sendOne<R>(topic: string, message: WireMessage, receipt: R, timeoutMs?: number): Promise<R> {
    // One `.then` from the driver's promise to the receipt: the accounting `send` does, then the receipt.
    const messages = [message];
    const watch = this.outcomes.begin(topic, messages);
    return this.dispatch(topic, messages, timeoutMs).then(
      (outcomes) => {
        this.accountOutcomes(topic, messages, outcomes, watch);
        if (outcomes[0] !== undefined) throw outcomes[0];
        return receipt;
      },
      (error: unknown) => {
        throw this.accountRejection(topic, messages, error, watch)[0];
      },
    );
  }

  /** Many messages in order: one outcome each. `atomic`: the driver stores all or none. */
  send(topic: string, messages: readonly WireMessage[], timeoutMs?: number, atomic = false): Promise<PublishOutcome[]> {
    const watch = this.outcomes.begin(topic, messages);
    return this.dispatch(topic, messages, timeoutMs, atomic).then(
      (outcomes) => this.accountOutcomes(topic, messages, outcomes, watch),
      (error: unknown) => this.accountRejection(topic, messages, error, watch),
    );
  }

  /**
   * Counts the messages as publishing, waits for room in the publish window
   * if there is none, and hands them to the driver (after ensuring the topic,
   * the first time). Never throws.
   */
  private dispatch(topic: string, messages: readonly WireMessage[], timeoutMs = this.defaultTimeoutMs, atomic = false): Promise<PublishOutcome[]> {
    this.publishing += messages.length;
    let waiting: Promise<void> | undefined;
    try {
      checkTimeout(timeoutMs);
      waiting = this.admission.admit(messages.length, topic, timeoutMs);
    } catch (error) {
      return this.unadmittedRejection(error);
    }
    if (waiting === undefined) return this.handOver(topic, messages, timeoutMs, atomic);
    return waiting.then(
      () => this.handOver(topic, messages, timeoutMs, atomic),
      (error: unknown) => this.unadmittedRejection(error),
    );
  }

  private unadmittedRejection(error: unknown): Promise<never> {
    if (typeof error === 'object' && error !== null) this.unadmitted.add(error);
    return Promise.reject(error);
  }

  private handOver(topic: string, messages: readonly WireMessage[], timeoutMs: number, atomic: boolean): Promise<PublishOutcome[]> {
    try {
      const host = this.host;
      const call = (): Promise<PublishOutcome[]> => {
        const options = host.optionsOf(topic);
        // Checked again here: a configureTopic while the call waited (its topic's ensure, room) may have made it ephemeral.
        if (atomic && options.persistence === 'ephemeral') return Promise.reject(atomicOnEphemeral(topic));
        return this.driver.publish(topic, messages, atomic ? { timeoutMs, topic: options, atomic } : { timeoutMs, topic: options });
      };
      const ensuring = host.ensureTopic(topic);
      if (ensuring) return ensuring.then(call);
      return call();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private accountOutcomes(topic: string, messages: readonly WireMessage[], outcomes: PublishOutcome[], watch: ReturnType<PublishOutcomes['begin']>): PublishOutcome[] {
    const count = messages.length;
    let failed = 0;
    for (const outcome of outcomes) if (outcome !== undefined) failed++;
    this.stats.published += count - failed;
    this.stats.publishFailed += failed;
    this.admission.release(count);
    this.settle(count);
    if (watch !== undefined) this.outcomes.settle(watch, topic, messages, outcomes);
    return outcomes;
  }

  /** The publish rejected as a whole: every message failed with the same error. */
  private accountRejection(topic: string, messages: readonly WireMessage[], error: unknown, watch: ReturnType<PublishOutcomes['begin']>): PublishOutcome[] {
    const count = messages.length;
    this.stats.publishFailed += count;
    if (!(typeof error === 'object' && error !== null && this.unadmitted.has(error))) this.admission.release(count);
    this.settle(count);
    const failure = toBuslineError(error);
    const outcomes = messages.map(() => failure);
    if (watch !== undefined) this.outcomes.settle(watch, topic, messages, outcomes);
    return outcomes;
  }

  private settle(count: number): void {
    this.publishing -= count;
    if (this.publishing > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** `{ atomic: true }` to an ephemeral topic: UNSUPPORTED, whether publishBatch sees it or, later, the hand-over to the driver. */
export function atomicOnEphemeral(topic: string): BuslineError {
  return new BuslineError(
    ErrorCode.Unsupported,
    `publishBatch to "${topic}" with { atomic: true }: "${topic}" is ephemeral (nothing is stored, so nothing can be stored atomically); ` +
      'publish without `atomic`, or make the topic persistent',
    { details: { topic } },
  );
}

/** Any failure as a BuslineError (a thrown non-error included), `code` for what is not one already. */
export function toBuslineError(error: unknown, code: ErrorCode = ErrorCode.PublishRejected, prefix?: string): BuslineError {
  if (isBuslineError(error)) return error;
  const message = prefix ? `${prefix}: ${errorMessage(error)}` : errorMessage(error);
  return new BuslineError(code, message, { cause: error });
}

/** A per-call publish timeout must be a positive, finite number of milliseconds. */
function checkTimeout(timeoutMs: unknown): void {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2_147_483_647) {
    throw new BuslineError(ErrorCode.ConfigInvalid, `publish timeoutMs must be a positive number of milliseconds (at most 2147483647), got ${String(timeoutMs)}`);
  }
}
