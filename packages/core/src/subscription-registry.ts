/**
 * SubscriptionRegistry: the bus's subscriptions. It makes each one when
 * subscribe is called — topic name and handler checked, options resolved
 * against the bus's defaults and the adapter's capabilities, so a bad
 * subscription fails there and not on its first message — keeps those made
 * before start() until start() opens them, opens one on its ensured topic,
 * and forgets one when it unsubscribes. When to open is EventBus's decision:
 * it follows the bus's lifecycle.
 */
import { DEFAULT_GROUP, type BusConfig } from './config.js';
import type { ConsumerSpec, Driver } from './driver.js';
import { BuslineError, ErrorCode } from './errors.js';
import { warnOnce, type Logger } from './logger.js';
import { toBuslineError } from './publish-pipeline.js';
import { resolveSubscription, type SubscribeOptions } from './subscribe-options.js';
import { Subscription, type HandlerKind, type SubscriptionHost } from './subscription.js';
import type { TopicRegistry } from './topic-registry.js';

/** The subscriptions of one bus: made, waiting for start(), open, forgotten on unsubscribe. */
export class SubscriptionRegistry {
  /** Every subscription made and not unsubscribed (the health report lists them). */
  readonly all = new Set<Subscription>();
  /** Made before the bus started, or while it was starting: start() opens them in order. */
  private readonly unattached: Subscription[] = [];

  constructor(
    private readonly driver: Driver,
    /** The bus's defaults for what a subscribe call leaves out. */
    private readonly config: Pick<BusConfig, 'group' | 'subscription' | 'retry' | 'deadLetterSuffix'>,
    private readonly log: Logger,
    private readonly topics: TopicRegistry,
    /** What a subscription gets of the bus: made afresh for each, so it binds the bus's `emit` as it is then. */
    private readonly host: () => SubscriptionHost,
  ) {}

  /** Checks the call, resolves its options and makes the subscription: registered, not opened. */
  make(topic: string, handler: HandlerKind, options: SubscribeOptions): Subscription {
    this.topics.checkTopic(topic);
    if (typeof handler.handler !== 'function') throw new BuslineError(ErrorCode.ConfigInvalid, 'subscribe needs a handler function');
    let resolved;
    try {
      resolved = resolveSubscription(topic, options, this.config, this.topics.optionsOf(topic).persistence);
    } catch (error) {
      throw toBuslineError(error, ErrorCode.ConfigInvalid, `invalid subscribe options for "${topic}"`);
    }
    if (resolved.retry.redelivery === 'broker' && !this.driver.capabilities.nativeRedeliveryDelay) {
      throw new BuslineError(
        ErrorCode.Unsupported,
        `the ${this.driver.name} adapter cannot redeliver with a delay; use retry.redelivery "inProcess"`,
      );
    }
    if (resolved.spec.group === DEFAULT_GROUP) {
      warnOnce(
        this.log,
        'default-group',
        { topic },
        `subscribing to "${topic}" with the default group name "${DEFAULT_GROUP}": every service that leaves it unset shares one group and splits the messages; set config.group (the service's name) or the subscription's group`,
      );
    }
    const subscription = new Subscription(this.host(), resolved, handler, (s) => this.forget(s));
    this.all.add(subscription);
    return subscription;
  }

  /** Leaves `subscription` for start() to open. */
  defer(subscription: Subscription): void {
    this.unattached.push(subscription);
  }

  /** The consumers start() will open, for the driver's connect. */
  planned(): ConsumerSpec[] {
    return this.unattached.map((s) => s.config.spec);
  }

  /** The next subscription start() opens, if any. */
  get nextUnattached(): Subscription | undefined {
    return this.unattached[0];
  }

  /** start() opened `subscription`: it no longer waits. */
  attached(subscription: Subscription): void {
    // Not shift(): an unsubscribe while it opened has already taken it out.
    this.unqueue(subscription);
  }

  async open(subscription: Subscription): Promise<void> {
    const ensuring = this.topics.ensureTopic(subscription.topic);
    if (ensuring) await ensuring;
    // Unsubscribed while the topic was ensured: nothing to open.
    if (subscription.stopped) return;
    await subscription.opened(this.driver.subscribe(subscription.config.spec, subscription.inlet));
  }

  forget(subscription: Subscription): void {
    this.all.delete(subscription);
    this.unqueue(subscription);
  }

  private unqueue(subscription: Subscription): void {
    const at = this.unattached.indexOf(subscription);
    if (at >= 0) this.unattached.splice(at, 1);
  }

  /**
   * Stops every subscription, then unsubscribes each within what is left
   * until `deadline`: messages waiting out a retry backoff go back to the
   * broker now instead of holding the close; running handlers see their
   * signal aborted.
   */
  closeAll(deadline: number): Promise<void[]> {
    const subscriptions = [...this.all];
    for (const s of subscriptions) s.stop();
    return Promise.all(subscriptions.map((s) => s.unsubscribe(Math.max(0, deadline - Date.now()))));
  }
}
