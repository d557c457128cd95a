import { deadLetterCopies, publishDeadLetter } from './dead-letter.js';
import { driverBudget, leftBehind } from './close-deadline.js';
import { DeliveryInlet, type HeldMessage, type InletProcessor } from './delivery-inlet.js';
import type { DriverSubscription, PublishOutcome, WireMessage } from './driver.js';
import { carriesEvent, type CloudEventsBinding } from './cloudevents-binding.js';
import { decodeMessage } from './envelope-decoding.js';
import type { Envelope, Payload } from './envelope.js';
import { BuslineError, ErrorCode, errorCode, errorMessage, isBuslineError, isRetryable } from './errors.js';
import type { BusEvents } from './events.js';
import type { PoolLane } from './keyed-ordering-pool.js';
import { foreignEnvelope } from './foreign-message.js';
import type { BusMetrics } from './metrics.js';
import { errorType, type RecorderSet } from './metrics-recorder.js';
import { runIn, type MessageTracer } from './tracing.js';
import type { Span } from '@opentelemetry/api';
import { BackoffTimers, retryDelay } from './retry.js';
import type { ResolvedSubscription } from './subscribe-options.js';

/**
 * What every handler gets besides the message: where it came from, which attempt this is, and a
 * signal aborted on close.
 */
export interface MessageContext {
  /** The topic the message came from. */
  topic: string;
  /** The consumer group handling it. */
  group: string;
  /** 1 on the first attempt; counts broker redeliveries and in-process retries. */
  attempt: number;
  /** Aborted when the bus closes, so long handlers can stop early. */
  signal: AbortSignal;
}
/** The context of a payload or envelope handler: MessageContext plus the decoded envelope. */
export interface EnvelopeContext extends MessageContext {
  /** The decoded envelope: id, type, aggregate id, headers, time. */
  envelope: Envelope;
}

/**
 * A handler of the payload (the usual `subscribe` handler); a throw or rejection is retried, then
 * dead-lettered.
 */
export type PayloadHandler<P = Payload> = (payload: P, context: EnvelopeContext) => unknown;
/** A handler of the whole envelope (`subscribeEnvelope`), for its id, type, headers and time. */
export type EnvelopeHandler<P = Payload> = (envelope: Envelope<P>, context: EnvelopeContext) => unknown;
/** A handler of the raw wire message (`subscribeRaw`): no decoding, no envelope. */
export type WireHandler = (message: WireMessage & { topic: string }, context: MessageContext) => unknown;

/** What a subscription needs from the bus that owns it. */
export interface SubscriptionHost {
  readonly metrics: BusMetrics;
  readonly recorders: RecorderSet;
  /** Set when `telemetry.tracing` is on. */
  readonly tracer: MessageTracer | undefined;
  /** Emits a bus event. */
  emit<E extends keyof BusEvents>(event: E, ...args: BusEvents[E]): boolean;
  /** Publishes a dead-letter copy through the bus's publish path. */
  publishDeadLetter(topic: string, message: WireMessage): Promise<PublishOutcome>;
  /** The CloudEvents header naming of the bus's driver. */
  readonly cloudEvents: CloudEventsBinding;
  /** The driver's `capabilities.redeliveryLimit`. */
  readonly redeliveryLimit: boolean;
  /** A lane of the bus's ordering pool for this subscription's handler. */
  lane(run: (message: HeldMessage) => void | Promise<void>, concurrency: number): PoolLane<HeldMessage>;
}

/** Which of the three handler shapes a subscription calls. */
export type HandlerKind =
  | { kind: 'payload'; handler: PayloadHandler<any> }
  | { kind: 'envelope'; handler: EnvelopeHandler<any> }
  | { kind: 'wire'; handler: WireHandler };

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * One subscription: the handling policy for messages its DeliveryInlet holds.
 * It feeds the bus's shared KeyedOrderingPool (per-key order, parallel across
 * keys), decodes envelopes (malformed ones go to the dead-letter topic and
 * never reach the handler), retries failures with backoff, dead-letters
 * exhausted messages and settles every message exactly once.
 *
 * Once it stops (unsubscribe or bus close), a message whose handling has not
 * started is given back to the broker unhandled, and so is one waiting out a
 * retry backoff; its key's later messages are given back too, because each of
 * them reaches `process` only after the one before it finished. So no later
 * message of a key is ever handled here after an earlier one was given back.
 *
 * The driver may recall what it delivered (`MessageSink.recall`, e.g. before
 * a Kafka rebalance): every recalled message not started is nacked when it
 * comes up, a running one that fails is nacked instead of retried, and one in
 * a retry backoff is nacked at once — so the driver waits only for handlers
 * that are running.
 */
export class Subscription implements InletProcessor {
  /** What the driver delivers into. */
  readonly inlet: DeliveryInlet;
  private readonly lane: PoolLane<HeldMessage>;
  private readonly stopper = new AbortController();
  private readonly backoff = new BackoffTimers();
  private driverSubscription: DriverSubscription | undefined;
  private opening: Promise<unknown> | undefined;
  private closing: Promise<void> | undefined;
  /**
   * Messages given back while the driver may still fetch, in the order given
   * back. Handed to the broker only once fetching stopped: a broker that still
   * has our pull open would hand them straight back to us, possibly after the
   * key's later messages that other members are waiting for.
   */
  private givenBack: HeldMessage[] | undefined = [];

  constructor(
    private readonly host: SubscriptionHost,
    readonly config: ResolvedSubscription,
    private readonly handler: HandlerKind,
    private readonly onClosed: (subscription: Subscription) => void,
  ) {
    this.lane = host.lane((message) => this.process(message), config.concurrency);
    this.inlet = new DeliveryInlet(this, { maxInFlight: config.spec.maxInFlight, failureDelayMs: config.retry.initialDelayMs });
  }

  /** The topic this subscription consumes. */
  get topic(): string {
    return this.config.spec.topic;
  }
  /** The consumer group this subscription is a member of. */
  get group(): string {
    return this.config.spec.group;
  }
  /** True once unsubscribe or the bus's close began: nothing new starts. (A field: read twice per message.) */
  stopped = false;

  /** Attached to the broker (health). */
  get attached(): boolean {
    return this.driverSubscription !== undefined;
  }

  /** @internal The bus is opening the driver consumer; unsubscribe waits for it. */
  opened(opening: Promise<DriverSubscription>): Promise<DriverSubscription> {
    // The caller sees a failure through `opening`; unsubscribe only needs to know it is over.
    this.opening = opening.then(
      (driverSubscription) => {
        this.driverSubscription = driverSubscription;
        this.inlet.setLease(driverSubscription.leaseMs);
      },
      () => undefined,
    );
    return opening;
  }

  accept(message: HeldMessage): void | Promise<void> {
    this.host.metrics.consumed++;
    this.host.recorders.current?.consumed(this.topic, this.group);
    if (this.stopped) {
      this.giveBack(message);
      return undefined;
    }
    const key = this.config.ordered ? (message.key ?? message.headers[this.host.cloudEvents.headers.subject]) : undefined;
    try {
      const wait = this.lane.submit(key, message);
      // A submit still waiting when the lane drains is refused: hand the message back.
      return wait?.catch((error: unknown) => {
        if (errorCode(error) !== ErrorCode.Closed) throw error;
        this.giveBack(message);
      });
    } catch (error) {
      if (errorCode(error) !== ErrorCode.Closed) throw error;
      this.giveBack(message);
      return undefined;
    }
  }

  /** Not handled here: back to the broker, once it no longer fetches for us. */
  private giveBack(message: HeldMessage): void {
    if (this.givenBack !== undefined) this.givenBack.push(message);
    else message.nack(0);
  }

  report(error: unknown, context: string): void {
    this.host.emit('error', asError(error), `subscription "${this.topic}" / "${this.group}": ${context}`);
  }

  count(name: string, by?: number): void {
    this.host.metrics.count(name, by);
  }

  recalled(): void {
    // Their `failed` sees the message recalled and hands it back.
    this.backoff.cancelWaiting();
  }

  /** The driver took it back (MessageSink.recall): nacked now, never started (again). */
  private handBack(message: HeldMessage): void {
    this.host.metrics.count('recalled');
    message.nack(0);
  }

  private process(message: HeldMessage): void | Promise<void> {
    if (this.stopped) {
      // Not started yet: back to the broker, so the key's order is kept by whoever handles it next.
      this.giveBack(message);
      return undefined;
    }
    // Recalled before it started; the key's later messages are recalled too, so none overtakes it.
    if (message.recalled) return this.handBack(message);
    this.host.recorders.current?.waited(this.topic, this.group, (Date.now() - message.receivedAt) / 1000);
    let envelope: Envelope | undefined;
    if (this.handler.kind !== 'wire') {
      const decoded =
        this.config.foreign && !carriesEvent(message.headers) ? foreignEnvelope(message) : decodeMessage(message, this.host.cloudEvents);
      if (isBuslineError(decoded)) {
        this.host.metrics.malformed++;
        this.host.emit('error', decoded, `decoding a message on topic "${this.topic}" (sent to the dead-letter topic)`);
        return this.deadLetter(message, decoded, message.deliveryCount, undefined, true);
      }
      envelope = decoded;
    }
    const { deliveryCount } = message;
    if (deliveryCount > this.config.retry.maxAttempts && this.host.redeliveryLimit) {
      // Each earlier delivery ended unsettled (its handler's process died, or lost it): never run it again.
      const error = new BuslineError(
        ErrorCode.HandlerFailed,
        `delivered ${deliveryCount} times, more than retry.maxAttempts (${this.config.retry.maxAttempts}); each earlier delivery ended without settling it (its handler's process died, or lost it)`,
        { details: { deliveryCount } },
      );
      return this.deadLetter(message, error, deliveryCount - 1, envelope, false);
    }
    return this.attempt(message, envelope, deliveryCount);
  }

  /**
   * One call of the handler. The success path allocates no async frame: a
   * handler that returns a value is settled right here, one that returns a
   * promise gets a single `.then`. Failures (and retries) take `failed`.
   */
  private attempt(message: HeldMessage, envelope: Envelope | undefined, attempt: number): void | Promise<void> {
    if (this.host.tracer !== undefined || this.host.recorders.current !== undefined) return this.attemptObserved(message, envelope, attempt);
    let pending: Promise<unknown> | undefined;
    try {
      const result = this.call(message, envelope, attempt);
      // As `await` would: a native promise as is, any other thenable adopted.
      if (result instanceof Promise) pending = result;
      else if (isThenable(result)) pending = Promise.resolve(result);
    } catch (error) {
      return this.failed(message, envelope, attempt, error);
    }
    if (pending === undefined) return this.succeeded(message);
    return pending.then(
      () => this.succeeded(message),
      (error: unknown) => this.failed(message, envelope, attempt, error),
    );
  }

  /** `attempt` with a process span around the handler and its duration recorded (telemetry on). */
  private attemptObserved(message: HeldMessage, envelope: Envelope | undefined, attempt: number): void | Promise<void> {
    const traced = this.host.tracer?.process(message.headers, this.topic, this.group, attempt, envelope);
    const started = performance.now();
    let pending: Promise<unknown> | undefined;
    try {
      // `with` takes the call's arguments: no closure per message.
      const result = traced === undefined ? this.call(message, envelope, attempt) : runIn(traced.context, this.call, this, message, envelope, attempt);
      if (result instanceof Promise) pending = result;
      else if (isThenable(result)) pending = Promise.resolve(result);
    } catch (error) {
      this.observed(traced?.span, started, envelope, true, error);
      return this.failed(message, envelope, attempt, error);
    }
    if (pending === undefined) {
      this.observed(traced?.span, started, envelope, false, undefined);
      return this.succeeded(message);
    }
    return pending.then(
      () => {
        this.observed(traced?.span, started, envelope, false, undefined);
        this.succeeded(message);
      },
      (error: unknown) => {
        this.observed(traced?.span, started, envelope, true, error);
        return this.failed(message, envelope, attempt, error);
      },
    );
  }

  /** A handler call ended: its durations recorded, its span ended. */
  private observed(span: Span | undefined, started: number, envelope: Envelope | undefined, failed: boolean, error: unknown): void {
    const recorder = this.host.recorders.current;
    if (recorder !== undefined) {
      recorder.processed(this.topic, this.group, (performance.now() - started) / 1000, failed ? errorType(error) : undefined);
      // A CloudEvent need not carry a time: no end-to-end figure for one that has none.
      if (!failed && envelope?.time !== undefined) recorder.endToEnd(this.topic, this.group, (Date.now() - envelope.time.getTime()) / 1000);
    }
    if (span !== undefined) this.host.tracer!.processed(span, failed, error);
  }

  private succeeded(message: HeldMessage): void {
    message.ack();
    this.host.metrics.handled++;
  }

  /** Attempt `attempt` failed: retry (after a backoff, or by the broker) or dead-letter. */
  private async failed(message: HeldMessage, envelope: Envelope | undefined, attempt: number, error: unknown): Promise<void> {
    const { retry } = this.config;
    this.host.metrics.failed++;
    if (!isRetryable(error) || attempt >= retry.maxAttempts) {
      return this.deadLetter(message, error, attempt, envelope, false);
    }
    if (message.recalled) return this.handBack(message);
    const delayMs = retryDelay(retry, attempt);
    this.host.metrics.retried++;
    this.host.recorders.current?.retried(this.topic, this.group);
    this.host.emit('retry', { topic: this.topic, group: this.group, attempt, delayMs, error });
    if (retry.redelivery === 'broker') {
      message.nack(delayMs);
      return;
    }
    if (!(await this.backoff.sleep(delayMs))) {
      // Stopping or recalled mid-backoff: hand the message back to the broker instead of waiting.
      if (message.recalled && !this.stopped) this.handBack(message);
      else this.giveBack(message);
      return;
    }
    return this.attempt(message, envelope, attempt + 1);
  }

  private call(message: HeldMessage, envelope: Envelope | undefined, attempt: number): unknown {
    const { topic, group } = this.config.spec;
    const signal = this.stopper.signal;
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
   * Publishes a copy to the dead-letter topic, then settles the message. A
   * failed dead-letter publish is retried with backoff while the subscription
   * runs; the original is never acknowledged before its copy is stored.
   */
  private async deadLetter(
    message: HeldMessage,
    error: unknown,
    attempts: number,
    envelope: Envelope | undefined,
    poison: boolean,
  ): Promise<void> {
    const reason = errorMessage(error);
    const dlq = this.config.deadLetterTopic;
    if (dlq !== undefined) {
      const copies = deadLetterCopies({ message, error, attempts, topic: this.topic, group: this.group, binding: this.host.cloudEvents, eventId: envelope?.id });
      for (let retry = 1; ; retry++) {
        const failure = await publishDeadLetter(copies, (copy) => this.host.publishDeadLetter(dlq, copy));
        if (failure === undefined) break;
        if (errorCode(failure) === ErrorCode.MessageTooLarge) {
          // Even the copy without its body is refused: nothing retrying can change.
          this.host.emit('error', failure, `dead-lettering a message of "${this.topic}" to "${dlq}" is impossible (the message is terminated where it is stored)`);
          message.term();
          return;
        }
        this.host.emit('error', failure, `publishing to dead-letter topic "${dlq}" (will retry; the message stays unacknowledged)`);
        if (!(await this.backoff.sleep(retryDelay(this.config.retry, Math.min(retry, 10))))) {
          if (message.recalled && !this.stopped) this.handBack(message);
          else this.giveBack(message);
          return;
        }
      }
    } else {
      this.host.emit('error', new BuslineError('HANDLER_FAILED', `message dropped after ${attempts} attempts (dead-lettering disabled): ${reason}`), `topic "${this.topic}"`);
    }
    this.host.metrics.deadLettered++;
    this.host.recorders.current?.deadLettered(this.topic, this.group, poison ? 'malformed' : 'failed');
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

  /**
   * Nothing new starts; messages waiting out a backoff go back to the broker;
   * running handlers see their signal aborted. (The bus calls it for every
   * subscription as it starts closing; unsubscribe calls it first.)
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopper.abort();
    this.backoff.cancelAll();
  }

  /**
   * Stops: handlers already running may finish (up to `timeoutMs`), every
   * message not started and every one in backoff goes back to the broker, then
   * the consumer is released.
   */
  unsubscribe(timeoutMs = 30_000): Promise<void> {
    this.closing ??= (async () => {
      const deadline = Date.now() + timeoutMs;
      this.stop();
      // A consumer still being opened is closed once it is open, never left attached.
      await this.opening;
      if (this.driverSubscription) await this.driverStep(this.driverSubscription.stop(), driverBudget(deadline), 'stopping the consumer');
      const givenBack = this.givenBack ?? [];
      this.givenBack = undefined;
      for (const message of givenBack) message.nack(0);
      const drained = await this.lane.drain(timeoutMs);
      if (!drained) {
        this.host.emit('error', new BuslineError('DRAIN_TIMEOUT', `handlers on "${this.topic}" did not finish within ${timeoutMs} ms; their messages stay unsettled and will be redelivered`), 'unsubscribe');
      }
      const left = driverBudget(deadline);
      if (this.driverSubscription) await this.driverStep(this.driverSubscription.close({ timeoutMs: left }), left, 'closing the consumer');
      this.inlet.close();
      this.onClosed(this);
    })();
    return this.closing;
  }

  /** Waits for a step of the driver's consumer (its stop, its last commits and release) within `leftBehind`'s bound; past it, an error. */
  private async driverStep(step: Promise<void>, budgetMs: number, what: string): Promise<void> {
    const bound = await leftBehind(step, budgetMs);
    if (bound === undefined) return;
    this.host.emit(
      'error',
      new BuslineError(
        'DRAIN_TIMEOUT',
        `${what} of "${this.topic}" did not finish within ${bound} ms (its broker does not answer): unsubscribe stopped waiting for it; what it did not acknowledge is delivered again`,
      ),
      'unsubscribe',
    );
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(errorMessage(error));
}
