/**
 * An in-process message broker: topics with an append-only log and retention,
 * consumer groups with competing members, per-key order, acknowledgements and
 * redelivery. It is what `MemoryDriver` maps the driver contract onto, and it
 * can be used on its own.
 *
 * Cost model (the hot path): a publish appends to an array; a delivery is one
 * object per message per group, handed to the sink in batches by one delivery
 * pass per group scheduled with a coalesced `setImmediate`. There are no
 * per-message timers or promises; nack delays share one timer per group (a
 * heap ordered by due time).
 *
 * This file is the broker's API (topics by name, publish, subscribe, stats);
 * the parts it is made of live beside it: topic.ts (the log, retention,
 * dedupe via deduper.ts), group.ts (key pinning, redelivery, the delivery
 * pass), member.ts (a member's queue and in-flight accounting), delivery.ts,
 * delay-heap.ts, and broker-registry.ts (`getMemoryBroker`).
 */
import {
  TopicMismatchError,
  type ConsumerSpec,
  type MessageSink,
  type PublishOutcome,
  type TopicOptions,
  type TopicState,
  type WireMessage,
} from '@busline/core/driver';
import { DEFAULT_DEDUPE_WINDOW_MS } from './config.js';
import { Group, type GroupStats } from './group.js';
import { Member, type MemberOptions } from './member.js';
import { Topic } from './topic.js';

export { DEDUPE_HEADER } from './deduper.js';
export { EPHEMERAL_PENDING_LIMIT, hashKey, type GroupStats } from './group.js';
export type { MemberOptions } from './member.js';
export { getMemoryBroker, dropMemoryBroker } from './broker-registry.js';

/** Per-publish settings of the memory broker, set from the bus config by the driver. */
export interface PublishSettings {
  /** Dedupe window for this publish; 0 disables. Default 2 minutes. */
  dedupeWindowMs?: number;
  /** Options for a topic this publish creates because it did not exist yet. */
  createWith?: Partial<TopicOptions>;
  /** Messages larger than this (body plus headers) are refused with MESSAGE_TOO_LARGE. Default: no limit. */
  maxMessageBytes?: number;
  /** Store every message or none (see Topic.publish). */
  atomic?: boolean;
}

/** A snapshot of one memory topic, for tests and diagnostics (`MemoryBroker.stats`). */
export interface TopicStats {
  options: TopicOptions;
  /** Offset of the oldest stored message (= nextOffset when none is stored). */
  firstOffset: number;
  nextOffset: number;
  /** Messages stored now. */
  messages: number;
  /** Bytes counted against maxBytes (0 when the topic has no byte limit). */
  bytes: number;
  /** Event ids remembered for deduplication. */
  dedupeIds: number;
  groups: Record<string, GroupStats>;
}

/** A consumer attached to a group: the member's handle. */
export interface MemorySubscription {
  readonly topic: string;
  readonly group: string;
  /** Stop receiving; delivered messages can still be settled. Messages queued for it go to other members. */
  stop(): void;
  /** Leave the group; unsettled messages are redelivered (deliveryCount + 1) to other or later members. */
  close(): void;
}

/** Options for a new MemoryBroker. */
export interface MemoryBrokerOptions {
  /** Default dedupe window for publishes that do not name one (ms; 0 = off). */
  dedupeWindowMs?: number;
}

/**
 * An in-process broker: topics as bounded logs, consumer groups with positions, acks, redelivery
 * and dedupe, so the memory adapter behaves like a real broker in tests. Buses naming the same
 * broker (`memory://name`) share one (see `getMemoryBroker`).
 */
export class MemoryBroker {
  private readonly topics = new Map<string, Topic>();

  /** Forgets a topic with its messages and groups (members still attached keep what they hold); false if there was none. */
  deleteTopic(name: string): boolean {
    return this.topics.delete(name);
  }
  readonly dedupeWindowMs: number;

  constructor(readonly name = 'anonymous', options: MemoryBrokerOptions = {}) {
    this.dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  }

  /** Whether `topic` exists. */
  hasTopic(topic: string): boolean {
    return this.topics.has(topic);
  }

  /** Names of every topic, for tests and diagnostics. */
  topicNames(): string[] {
    return [...this.topics.keys()];
  }

  /** What the topic has (every TopicOptions field; null = unlimited / none), or undefined if it does not exist. */
  describeTopic(topic: string): TopicState | undefined {
    return this.topics.get(topic)?.state();
  }

  /**
   * Creates the topic; a topic that already exists is left as it is (returns
   * false). `partitions` and `replicas` are accepted and reported as 1.
   */
  createTopic(topic: string, options: Partial<TopicOptions> = {}): boolean {
    if (this.topics.has(topic)) return false;
    this.topics.set(topic, new Topic(topic, options));
    return true;
  }

  /**
   * Replaces the topic's options (creating it if needed); retention applies at
   * once, switching to ephemeral drops what is stored. Throws
   * TopicMismatchError for what an in-memory topic cannot have (more than one
   * partition or replica) after applying everything else.
   */
  updateTopic(topic: string, options: Partial<TopicOptions>): void {
    const t = this.topics.get(topic);
    if (t === undefined) {
      this.createTopic(topic, options);
      const refused = this.topics.get(topic)!.update(options);
      if (refused.length) throw new TopicMismatchError(topic, refused, 'cannot be changed on the in-memory broker');
      return;
    }
    const refused = t.update(options);
    if (refused.length) throw new TopicMismatchError(topic, refused, 'cannot be changed on the in-memory broker');
  }

  /**
   * Appends messages in order (or fans them out, for an ephemeral topic).
   * Synchronous: a message is "durably accepted" once it is in the log. A
   * topic that does not exist is created with `settings.createWith` (default:
   * persistent, unlimited).
   */
  publish(topic: string, messages: readonly WireMessage[], settings: PublishSettings = {}): PublishOutcome[] {
    let t = this.topics.get(topic);
    if (t === undefined) {
      t = new Topic(topic, settings.createWith ?? {});
      this.topics.set(topic, t);
    }
    return t.publish(messages, settings.dedupeWindowMs ?? this.dedupeWindowMs, settings.maxMessageBytes, settings.atomic);
  }

  /**
   * Joins `spec.group` on `spec.topic` (creating the topic with
   * `spec.persistence` if needed). A group that is new starts at the log start
   * (`earliest`) or its end (`latest`); an existing group keeps its position.
   */
  subscribe(
    spec: Pick<ConsumerSpec, 'topic' | 'group' | 'maxInFlight'> & Partial<Pick<ConsumerSpec, 'persistence' | 'startFrom'>>,
    sink: MessageSink,
    options: MemberOptions = {},
  ): MemorySubscription {
    let t = this.topics.get(spec.topic);
    if (t === undefined) {
      t = new Topic(spec.topic, { persistence: spec.persistence ?? 'persistent' });
      this.topics.set(spec.topic, t);
    }
    let group = t.groups.get(spec.group);
    if (group === undefined) {
      group = new Group(t, spec.group, spec.startFrom ?? 'earliest');
      t.groups.set(spec.group, group);
    }
    const member = new Member(group, sink, spec, options);
    group.join(member);
    return {
      topic: spec.topic,
      group: spec.group,
      stop: () => member.stop(),
      close: () => member.close(),
    };
  }

  /** Counts and group positions of `topic`, or undefined when it does not exist. */
  stats(topic: string): TopicStats | undefined {
    const t = this.topics.get(topic);
    if (t === undefined) return undefined;
    t.expire();
    const groups: Record<string, GroupStats> = {};
    for (const [name, g] of t.groups) groups[name] = g.stats();
    return {
      options: { ...t.options },
      firstOffset: t.firstOffset,
      nextOffset: t.nextOffset,
      messages: t.stored,
      bytes: t.bytes,
      dedupeIds: t.dedupeSize,
      groups,
    };
  }
}
