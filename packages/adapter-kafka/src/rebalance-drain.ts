/**
 * RebalanceDrain: what a GroupConsumer does between noticing a rebalance and
 * rejoining the group, so a partition's next owner starts only after this
 * member settled what it held (kafkajs speaks only the eager classic protocol:
 * every member gives up every partition at each rebalance).
 *
 * Once per rebalance, whichever way it was noticed (our eachBatch's heartbeat,
 * or kafkajs's own rejoin through the hook of kafkajs-rejoin-hook.ts):
 * 1. delivery stops and core is asked to hand back every delivered record whose
 *    handler has not started (`MessageSink.recall`: records queued behind their
 *    key or waiting for a slot are nacked without running), so only running
 *    handlers are waited for;
 * 2. the member heartbeats every `heartbeatIntervalMs` while it waits: the
 *    coordinator answers REBALANCE_IN_PROGRESS but restarts the member's
 *    session timer, so the session timeout does not end the wait;
 * 3. the wait ends when nothing delivered is unsettled, or at the bound
 *    `rebalanceDrainBoundMs` — the rebalance timeout less the time it may have
 *    taken to notice and a rejoin allowance — so the member rejoins while the
 *    coordinator still waits for it and keeps its membership;
 * 4. the watermarks are committed (the generation is still current), then
 *    kafkajs rejoins.
 * Past the bound, handlers still running are abandoned (RebalanceHandler
 * counts them as `abandonedOnRebalance` when the new assignment arrives; the
 * next owner may run their keys at the same time): counted here as
 * `rebalanceDrainTimeouts` and reported with what to configure.
 */
import { BuslineError, ErrorCode, type DriverHooks } from '@busline/core/driver';
import type { KafkaConfig } from './config.js';
import { protocolType } from './kafka-errors.js';

/** Time allowed for the final commit and the JoinGroup request after the drain. */
export const REJOIN_ALLOWANCE_MS = 2_000;

/**
 * How long a member waits for running handlers before it rejoins: the
 * rebalance timeout (how long the coordinator waits for members to rejoin)
 * less how late the rebalance may have been noticed (a heartbeat interval and
 * the longest fetch wait) and the rejoin allowance.
 */
export function rebalanceDrainBoundMs(c: KafkaConfig['consumer']): number {
  return Math.max(0, c.rebalanceTimeoutMs - c.heartbeatIntervalMs - fetchWaitMs(c) - REJOIN_ALLOWANCE_MS);
}

/** The longest a fetch may wait: the idle long-poll when it is the longer. */
const fetchWaitMs = (c: KafkaConfig['consumer']): number => Math.max(c.maxWaitTimeMs, c.idleFetchWaitMs);

/** What the drain needs of its GroupConsumer. */
export interface RebalanceDrainHost {
  readonly group: string;
  readonly config: KafkaConfig['consumer'];
  readonly hooks: DriverHooks;
  /** Stops delivering and recalls from core what has not started. */
  stopDelivering(): void;
  /** Delivered records not yet settled. */
  unsettled(): number;
  /** Resolves true once nothing is unsettled, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
  commit(): Promise<void>;
}

export class RebalanceDrain {
  private running: Promise<void> | undefined;
  /** This rebalance's drain is over: a second notice of it (kafkajs's rejoin after our eachBatch) does not wait again. */
  private done = false;

  constructor(private readonly host: RebalanceDrainHost) {}

  /** Drains once per rebalance (concurrent callers share it); never rejects. */
  beforeRejoin(heartbeat: () => Promise<void>): Promise<void> {
    if (this.done) return Promise.resolve();
    this.running ??= this.run(heartbeat).finally(() => {
      this.running = undefined;
      this.done = true;
    });
    return this.running;
  }

  /** The member joined the group again: the next rebalance drains anew. */
  joined(): void {
    this.done = false;
  }

  private async run(heartbeat: () => Promise<void>): Promise<void> {
    const { config: c, hooks, group } = this.host;
    this.host.stopDelivering();
    const bound = rebalanceDrainBoundMs(c);
    const beat = setInterval(() => {
      heartbeat().catch((error: unknown) => {
        // REBALANCE_IN_PROGRESS is the expected answer; anything else means the membership is in doubt.
        if (protocolType(error) !== 'REBALANCE_IN_PROGRESS') hooks.count('rebalanceDrainHeartbeatFailures');
      });
    }, c.heartbeatIntervalMs);
    let drained: boolean;
    try {
      drained = await this.host.drain(bound);
    } finally {
      clearInterval(beat);
    }
    if (drained) hooks.count('rebalanceDrains');
    else {
      const running = this.host.unsettled();
      hooks.count('rebalanceDrainTimeouts');
      hooks.error(
        new BuslineError(
          ErrorCode.DrainTimeout,
          `consumer group "${group}": ${running} handlers were still running ${bound} ms into a rebalance; the member rejoins without them, so the next owner of their partitions may handle their keys at the same time (and again). ` +
            `Set consumer.rebalanceTimeoutMs above the longest handler time plus ${c.heartbeatIntervalMs + fetchWaitMs(c) + REJOIN_ALLOWANCE_MS} ms (heartbeatIntervalMs + the longer of maxWaitTimeMs and idleFetchWaitMs + ${REJOIN_ALLOWANCE_MS})`,
        ),
        'kafka consumer rebalance',
      );
    }
    await this.host.commit();
  }
}
