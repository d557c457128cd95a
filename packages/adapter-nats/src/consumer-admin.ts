import { nanos } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  ReplayPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { BuslineError, ErrorCode, type ConsumerSpec } from '@busline/core/driver';
import type { NatsConfig } from './config.js';
import { adminError } from './streams.js';

/** The priority group every pinned busline consumer uses. */
export const PIN_GROUP = 'busline';

/**
 * The durable consumer on the server, as the JetStream admin API sees it: the
 * config a subscription asks for, creating or adopting it, and the check that
 * refuses a second member of a cumulative group. Runs on subscribe (and when a
 * pull loop re-creates a deleted consumer), never per message.
 */

export const CONSUMER_NOT_FOUND = 10014;

/**
 * Creates the durable consumer of (stream, durable) or adopts the existing one.
 * An existing consumer keeps its ack policy and position; its max_ack_pending
 * and ack_wait are brought to the wanted values.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  topic: string,
  stream: string,
  wanted: Partial<ConsumerConfig> & { durable_name: string },
): Promise<ConsumerInfo> {
  const durable = wanted.durable_name;
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(stream, durable);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) throw adminError(topic, `reading consumer ${durable}`, error);
  }
  if (info === undefined) {
    try {
      return await jsm.consumers.add(stream, wanted);
    } catch (error) {
      // Another member created it at the same moment (perhaps with other settings): use theirs.
      try {
        info = await jsm.consumers.info(stream, durable);
      } catch {
        throw adminError(topic, `creating consumer ${durable}`, error);
      }
    }
  }
  const c = info.config;
  const pinWanted = wanted.priority_policy !== undefined && (c.priority_policy !== wanted.priority_policy || c.priority_timeout !== wanted.priority_timeout);
  if (pinWanted || (wanted.max_ack_pending !== undefined && c.max_ack_pending !== wanted.max_ack_pending) || (wanted.ack_wait !== undefined && c.ack_wait !== wanted.ack_wait)) {
    const update: Partial<ConsumerConfig> = {
      max_ack_pending: wanted.max_ack_pending ?? c.max_ack_pending,
      ack_wait: wanted.ack_wait ?? c.ack_wait,
    };
    if (pinWanted) {
      update.priority_policy = wanted.priority_policy!;
      update.priority_groups = wanted.priority_groups!;
      update.priority_timeout = wanted.priority_timeout!;
    }
    try {
      info = await jsm.consumers.update(stream, durable, update);
    } catch (error) {
      // A group member must never consume without its pin: that is per-key order across members.
      if (pinWanted) throw adminError(topic, `pinning consumer ${durable} (priority_policy pinned_client)`, error);
      // Keep the other settings (e.g. a server that refuses the change); the consumer still works.
    }
  }
  return info;
}

/**
 * Cumulative acks (AckPolicy all) need one member per (topic, group): an
 * ack-all from one member covers the other's unsettled messages, and if that
 * member dies they are never redelivered. The server's consumer info counts
 * the pull requests waiting on the consumer (`num_waiting`), after dropping
 * those whose reply subject has no interest left (a member that closed,
 * crashed or lost its connection), so a count above zero is a live member. A
 * cumulative member keeps a pull request open even while it is blocked (see
 * `maybePull`), so a busy member is seen too.
 */
export function refuseSecondMember(info: ConsumerInfo, topic: string, durable: string): void {
  if (info.config.ack_policy !== AckPolicy.All || info.num_waiting === 0) return;
  throw new BuslineError(
    ErrorCode.Unsupported,
    `consumer ${durable} of "${topic}" acknowledges cumulatively (AckPolicy all) and another member is consuming it (${info.num_waiting} pull request(s) waiting): ` +
      "ackMode 'cumulative' needs a single member per group, since one member's ack-all would acknowledge the other's unhandled messages " +
      "and lose them if it dies. Use ackMode 'explicit' for groups with several members, or stop the other member first.",
    { details: { topic, durable, numWaiting: info.num_waiting } },
  );
}

/**
 * How long a pin outlives the last pull request of its member (priority_timeout).
 * Longer than the ack wait plus two pin refreshes: when a member dies, every
 * message it held is due for redelivery before another member can take the
 * pin, so the new owner gets those first and a key's order holds.
 */
export function pinTimeoutMs(ackWaitMs: number): number {
  return ackWaitMs + 2 * pinRefreshMs(ackWaitMs) + 1_000;
}

/** How often a pinned loop pulls at least, to keep a pin that lapses after `ms`: a third of it, within [200 ms, 5 s]. */
export function pinRefreshMs(ms: number): number {
  return Math.max(200, Math.min(5_000, Math.floor(ms / 3)));
}

/** The durable consumer config for a subscription (`pinned`: one member at a time, see PartitionedConsumer). */
export function consumerConfig(
  spec: ConsumerSpec,
  durable: string,
  config: NatsConfig,
  filterSubject: string | undefined,
  pinned = false,
): Partial<ConsumerConfig> & { durable_name: string } {
  const cumulative = config.ackMode === 'cumulative' && config.streamMode === 'perTopic';
  const wanted: Partial<ConsumerConfig> & { durable_name: string } = {
    durable_name: durable,
    ack_policy: cumulative ? AckPolicy.All : AckPolicy.Explicit,
    deliver_policy: spec.startFrom === 'latest' ? DeliverPolicy.New : DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    ack_wait: nanos(config.ackWaitMs),
    max_ack_pending: config.maxAckPending ?? spec.maxInFlight,
    max_deliver: -1,
  };
  if (filterSubject !== undefined) wanted.filter_subject = filterSubject;
  if (pinned) {
    wanted.priority_policy = 'pinned_client';
    wanted.priority_groups = [PIN_GROUP];
    wanted.priority_timeout = nanos(pinTimeoutMs(config.ackWaitMs));
  }
  return wanted;
}
