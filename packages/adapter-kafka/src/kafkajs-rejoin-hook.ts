import { patchKafkajsPrototype } from './kafkajs-internals.js';
import { MemberRegistry } from './kafkajs-members.js';

/**
 * A "before rejoin" hook for kafkajs 2.2.4 consumers, which have no
 * revocation callback. kafkajs rejoins a rebalancing group from several
 * places: after our eachBatch threw REBALANCE_IN_PROGRESS (it waits for
 * eachBatch first), but also straight from its fetch loop (an idle fetch, or
 * every partition paused because handlers are slow) and after stale metadata
 * — without waiting for records still being handled. All of them go through
 * `ConsumerGroup.prototype.joinAndSync`, so that is wrapped, once, when the
 * adapter loads: a rejoin of a member (a member id from an earlier join) first
 * awaits the hook registered for that group and member id, which drains what
 * the member holds. The hook gets a heartbeat of that ConsumerGroup, so the
 * member keeps its session while it waits.
 *
 * A first join (no
 * member id yet) and a join after the coordinator forgot the member run as
 * before: the member holds nothing the group still counts as its own. If the
 * module moved (another kafkajs version), nothing is patched and
 * `applyKafkajsRejoinHook` returns false.
 *
 * A consumer kafkajs restarts after a crash rejoins as the member it was.
 * kafkajs gives the restarted consumer a new ConsumerGroup with no member id,
 * so it joined as a stranger; a broker that restarted (or a coordinator that
 * moved) has loaded the group with the old member in it, and the coordinator
 * held the new member's join until the old one's session expired: measured,
 * consumption stopped for 30 s (`sessionTimeoutMs`) after a 3 s restart of a
 * single broker. The member id of a consumer's last join is kept per kafkajs
 * consumer (its cluster object, the same across its restarts) until it leaves
 * the group; a join with an id the coordinator no longer knows fails with
 * UNKNOWN_MEMBER_ID, and kafkajs then joins again without one.
 */
export type BeforeRejoin = (heartbeat: () => Promise<void>) => Promise<void>;

interface ConsumerGroupLike {
  groupId: string;
  memberId: string | null;
  /** The kafkajs consumer's cluster: one per consumer, kept across kafkajs's restarts of it. */
  cluster: object;
  joinAndSync(): Promise<void>;
  leave(): Promise<void>;
  heartbeat(options: { interval: number }): Promise<void>;
}

/** The member id of each kafkajs consumer's last join, until it leaves the group. */
const lastMember = new WeakMap<object, string>();

const PATCHED = Symbol.for('busline.kafkajs.rejoinHook');
const hooks = new MemberRegistry<BeforeRejoin>();

/** Registers `hook` for member `memberId` of `groupId`; returns its removal. */
export function registerBeforeRejoin(groupId: string, memberId: string, hook: BeforeRejoin): () => void {
  return hooks.register(groupId, memberId, hook);
}

export function applyKafkajsRejoinHook(): boolean {
  return patchKafkajsPrototype<ConsumerGroupLike>('consumer/consumerGroup.js', PATCHED, ['joinAndSync', 'leave', 'heartbeat'], (proto) => {
    const original = proto.joinAndSync;
    proto.joinAndSync = async function (this: ConsumerGroupLike): Promise<void> {
      if (this.memberId === null) this.memberId = lastMember.get(this.cluster) ?? null;
      const hook = hooks.get(this.groupId, this.memberId);
      // interval 0: the hook paces its heartbeats itself (kafkajs does not advance its clock when one fails).
      if (hook !== undefined) await hook(() => this.heartbeat({ interval: 0 }));
      await original.call(this);
      if (this.memberId !== null) lastMember.set(this.cluster, this.memberId);
    };
    const leave = proto.leave;
    proto.leave = async function (this: ConsumerGroupLike): Promise<void> {
      await leave.call(this);
      lastMember.delete(this.cluster);
    };
  });
}
