import { z } from 'zod';
import { groupNameSchema, type SubscriptionDefaults } from './config.js';
import type { ConsumerSpec, DeliveredMessage, DriverSubscription, MessageSink, PublishOutcome, WireMessage } from './driver.js';
import { decodeMessage, Header, type Envelope, type Payload } from './envelope.js';
import { BuslineError, ClosedError, EnvelopeError, errorMessage, isRetryable } from './errors.js';
import type { BusEvents } from './events.js';
import type { PoolLane } from './keyed-ordering-pool.js';
import type { BusMetrics } from './metrics.js';
import { delay, retryDelay, retryOptionsSchema, type RetryPolicy } from './retry.js';

export interface MessageContext {
  topic: string;
  group: string;
  /** 1 on the first attempt; counts broker redeliveries and in-process retries. */
  attempt: number;
  /** Aborted when the bus closes, so long handlers can stop early. */
  signal: AbortSignal;
}
export interface EnvelopeContext extends MessageContext {
  envelope: Envelope;
}

export type PayloadHandler<P = Payload> = (payload: P, context: EnvelopeContext) => unknown;
export type EnvelopeHandler<P = Payload> = (envelope: Envelope<P>, context: EnvelopeContext) => unknown;
export type WireHandler = (message: WireMessage & { topic: string }, context: MessageContext) => unknown;

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
  })
  .strict();
export type SubscribeOptions = z.input<typeof subscribeOptionsSchema>;

/** Dead-letter headers, readable by whoever drains the dead-letter topic. */
export const DeadLetterHeader = {
  error: 'busline-dlq-error',
  errorCode: 'busline-dlq-error-code',
  attempts: 'busline-dlq-attempts',
  topic: 'busline-dlq-topic',
  group: 'busline-dlq-group',
  time: 'busline-dlq-time',
} as const;

/** What a subscription needs from the bus that owns it. */
export interface SubscriptionHost {
  readonly metrics: BusMetrics;
  /** Aborted when the bus starts closing. */
  readonly closing: AbortSignal;
  emit<E extends keyof BusEvents>(event: E, ...args: BusEvents[E]): boolean;
  publishDeadLetter(topic: string, message: WireMessage): Promise<PublishOutcome>;
  lane(run: (message: DeliveredMessage) => void | Promise<void>, concurrency: number): PoolLane<DeliveredMessage>;
}

export type HandlerKind =
  | { kind: 'payload'; handler: PayloadHandler<any> }
  | { kind: 'envelope'; handler: EnvelopeHandler<any> }
  | { kind: 'wire'; handler: WireHandler };

export interface ResolvedSubscription {
  spec: ConsumerSpec;
  concurrency: number;
  ordered: boolean;
  retry: RetryPolicy;
  deadLetterTopic: string | undefined;
}

export function resolveSubscription(
  topic: string,
  options: SubscribeOptions,
  defaults: { group: string; subscription: SubscriptionDefaults; retry: RetryPolicy; deadLetterSuffix: string | false },
  persistence: ConsumerSpec['persistence'],
): ResolvedSubscription {
  const o = subscribeOptionsSchema.parse(options);
  const d = defaults.subscription;
  const deadLetterTopic =
    o.deadLetter === false || defaults.deadLetterSuffix === false && o.deadLetter?.topic === undefined
      ? undefined
      : (o.deadLetter?.topic ?? `${topic}${defaults.deadLetterSuffix}`);
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
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/** Header values must stay on one line and bounded. */
function headerText(text: string, max = 1024): string {
  const flat = text.replace(/[\r\n\0]+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * One subscription: the sink a driver's fetch loop delivers into. It feeds the
 * bus's shared KeyedOrderingPool (per-key order, parallel across keys), decodes
 * envelopes (malformed ones go to the dead-letter topic and never reach the
 * handler), retries failures with backoff, dead-letters exhausted messages and
 * settles every delivery exactly once.
 */
export class Subscription implements MessageSink {
  private readonly lane: PoolLane<DeliveredMessage>;
  private driverSubscription: DriverSubscription | undefined;
  private stopped = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly host: SubscriptionHost,
    readonly config: ResolvedSubscription,
    private readonly handler: HandlerKind,
    private readonly onClosed: (subscription: Subscription) => void,
  ) {
    this.lane = host.lane((message) => this.process(message), config.concurrency);
  }

  get topic(): string {
    return this.config.spec.topic;
  }
  get group(): string {
    return this.config.spec.group;
  }

  /** @internal called by the bus once the driver consumer is open. */
  attach(driverSubscription: DriverSubscription): void {
    this.driverSubscription = driverSubscription;
  }

  deliver(batch: DeliveredMessage[]): void | Promise<void> {
    this.host.metrics.consumed += batch.length;
    for (let i = 0; i < batch.length; i++) {
      const wait = this.submit(batch[i]!);
      if (wait) return this.deliverRest(wait, batch, i + 1);
    }
  }

  private async deliverRest(wait: Promise<void>, batch: DeliveredMessage[], from: number): Promise<void> {
    await wait;
    for (let i = from; i < batch.length; i++) {
      const next = this.submit(batch[i]!);
      if (next) await next;
    }
  }

  private submit(message: DeliveredMessage): Promise<void> | undefined {
    if (this.stopped) {
      message.nack(0);
      return undefined;
    }
    const key = this.config.ordered ? (message.key ?? message.headers[Header.subject]) : undefined;
    try {
      const wait = this.lane.submit(key, message);
      // A submit still waiting when the lane drains is refused: hand the message back.
      return wait?.catch((error: unknown) => {
        if (!(error instanceof ClosedError)) throw error;
        message.nack(0);
      });
    } catch (error) {
      if (!(error instanceof ClosedError)) throw error;
      message.nack(0);
      return undefined;
    }
  }

  private process(message: DeliveredMessage): void | Promise<void> {
    let envelope: Envelope | undefined;
    if (this.handler.kind !== 'wire') {
      const decoded = decodeMessage(message);
      if (decoded instanceof EnvelopeError) {
        this.host.metrics.malformed++;
        this.host.emit('error', decoded, `decoding a message on topic "${this.topic}" (sent to the dead-letter topic)`);
        return this.deadLetter(message, decoded, message.deliveryCount, undefined, true);
      }
      envelope = decoded;
    }
    return this.attempt(message, envelope, message.deliveryCount);
  }

  /**
   * One call of the handler. The success path allocates no async frame: a
   * handler that returns a value is settled right here, one that returns a
   * promise gets a single `.then`. Failures (and retries) take `failed`.
   */
  private attempt(message: DeliveredMessage, envelope: Envelope | undefined, attempt: number): void | Promise<void> {
    let result: unknown;
    let pending: Promise<unknown> | undefined;
    try {
      result = this.call(message, envelope, attempt);
      // As `await` would: a native promise as is, any other thenable adopted.
      if (result instanceof Promise) pending = result;
      else if (isThenable(result)) pending = Promise.resolve(result);
    } catch (error) {
      return this.failed(message, envelope, attempt, error);
    }
    if (pending === undefined) return this.succeeded(message, envelope, attempt);
    return pending.then(
      () => this.succeeded(message, envelope, attempt),
      (error: unknown) => this.failed(message, envelope, attempt, error),
    );
  }

  private succeeded(message: DeliveredMessage, envelope: Envelope | undefined, attempt: number): void | Promise<void> {
    try {
      message.ack();
    } catch (error) {
      return this.failed(message, envelope, attempt, error);
    }
    this.host.metrics.handled++;
  }

  /** Attempt `attempt` failed: retry (after a backoff, or by the broker) or dead-letter. */
  private async failed(message: DeliveredMessage, envelope: Envelope | undefined, attempt: number, error: unknown): Promise<void> {
    const { retry } = this.config;
    this.host.metrics.failed++;
    if (!isRetryable(error) || attempt >= retry.maxAttempts) {
      return this.deadLetter(message, error, attempt, envelope, false);
    }
    const delayMs = retryDelay(retry, attempt);
    this.host.metrics.retried++;
    this.host.emit('retry', { topic: this.topic, group: this.group, attempt, delayMs, error });
    if (retry.redelivery === 'broker') {
      message.nack(delayMs);
      return;
    }
    if (!(await delay(delayMs, this.host.closing))) {
      // Closing mid-backoff: hand the message back to the broker instead of waiting.
      message.nack(0);
      return;
    }
    return this.attempt(message, envelope, attempt + 1);
  }

  private call(message: DeliveredMessage, envelope: Envelope | undefined, attempt: number): unknown {
    const { topic, group } = this.config.spec;
    const signal = this.host.closing;
    switch (this.handler.kind) {
      case 'wire':
        return this.handler.handler(
          { key: message.key, headers: message.headers, body: message.body, topic: message.topic },
          { topic, group, attempt, signal },
        );
      case 'envelope':
        return this.handler.handler(envelope!, { topic, group, attempt, signal, envelope: envelope! });
      case 'payload':
        return this.handler.handler(envelope!.payload, { topic, group, attempt, signal, envelope: envelope! });
    }
  }

  /**
   * Publishes the message to the dead-letter topic, then settles it. A failed
   * dead-letter publish is retried with backoff; the original is never
   * acknowledged before its copy is stored.
   */
  private async deadLetter(
    message: DeliveredMessage,
    error: unknown,
    attempts: number,
    envelope: Envelope | undefined,
    poison: boolean,
  ): Promise<void> {
    const reason = errorMessage(error);
    const dlq = this.config.deadLetterTopic;
    if (dlq !== undefined) {
      const headers: Record<string, string> = {
        ...message.headers,
        [DeadLetterHeader.error]: headerText(reason),
        [DeadLetterHeader.attempts]: String(attempts),
        [DeadLetterHeader.topic]: this.topic,
        [DeadLetterHeader.group]: this.group,
        [DeadLetterHeader.time]: new Date().toISOString(),
      };
      if (error instanceof BuslineError) headers[DeadLetterHeader.errorCode] = error.code;
      for (let retry = 1; ; retry++) {
        const failure = await this.host.publishDeadLetter(dlq, { key: message.key, headers, body: message.body });
        if (failure === undefined) break;
        this.host.emit('error', failure, `publishing to dead-letter topic "${dlq}" (will retry; the message stays unacknowledged)`);
        if (!(await delay(retryDelay(this.config.retry, Math.min(retry, 10)), this.host.closing))) {
          message.nack(0);
          return;
        }
      }
    } else {
      this.host.emit('error', new BuslineError('HANDLER_FAILED', `message dropped after ${attempts} attempts (dead-lettering disabled): ${reason}`), `topic "${this.topic}"`);
    }
    this.host.metrics.deadLettered++;
    if (poison) message.term();
    else message.ack();
    this.host.emit('deadLetter', {
      topic: this.topic,
      group: this.group,
      deadLetterTopic: dlq,
      error: reason,
      attempts,
      ...(envelope ? { envelope } : {}),
    });
  }

  /** Stops fetching, lets accepted messages finish (up to `timeoutMs`), then releases the consumer. */
  unsubscribe(timeoutMs = 30_000): Promise<void> {
    this.closing ??= (async () => {
      this.stopped = true;
      await this.driverSubscription?.stop();
      const drained = await this.lane.drain(timeoutMs);
      if (!drained) {
        this.host.emit('error', new BuslineError('DRAIN_TIMEOUT', `handlers on "${this.topic}" did not finish within ${timeoutMs} ms; unfinished messages will be redelivered`), 'unsubscribe');
      }
      await this.driverSubscription?.close();
      this.onClosed(this);
    })();
    return this.closing;
  }
}
