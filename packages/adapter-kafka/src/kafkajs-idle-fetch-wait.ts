import { patchKafkajsPrototype } from './kafkajs-internals.js';
import { MemberRegistry } from './kafkajs-members.js';

/**
 * A longer fetch long-poll while a consumer is idle, for kafkajs 2.2.4.
 *
 * Why: an idle kafkajs consumer sends one fetch per broker every
 * `maxWaitTimeMs` (100 ms by default), and decoding the empty answers is
 * most of what an idle bus costs (about 2 % of a core at 100 ms, under 1 %
 * at 1 s). A long long-poll costs no latency while the fetch is waiting —
 * the broker answers as soon as a record arrives — but kafkajs uses the same
 * `maxWaitTime` for two things that must stay short: how long a consumer
 * whose partitions are all paused sleeps, and how long a partition resumed
 * after a pause waits for the fetch already in flight without it.
 *
 * How: `ConsumerGroup.prototype.fetch` is wrapped, once, when the adapter
 * loads. Before each fetch to a broker, a registered member gets the idle
 * wait when that broker's previous fetch came back empty and none of the
 * member's partitions is paused (so no partition can be left out of the long poll),
 * and its configured `maxWaitTimeMs` otherwise. Records, a pause, or a
 * member without a registration keep kafkajs's behaviour. If the module
 * moved (another kafkajs version), nothing is patched and
 * `applyKafkajsIdleFetchWait` returns false.
 */
interface ConsumerGroupLike {
  groupId: string;
  memberId: string | null;
  maxWaitTime: number;
  subscriptionState: { paused(): unknown[] };
  fetch(nodeId: number): Promise<{ isEmpty(): boolean }[]>;
  [BASE_WAIT]?: number;
  [EMPTY_NODES]?: Set<number>;
}

const PATCHED = Symbol.for('busline.kafkajs.idleFetchWait');
const BASE_WAIT = Symbol('busline.baseWait');
const EMPTY_NODES = Symbol('busline.emptyNodes');
const idleWaits = new MemberRegistry<number>();

/** Member `memberId` of `groupId` long-polls `idleWaitMs` while idle; returns the removal. */
export function registerIdleFetchWait(groupId: string, memberId: string, idleWaitMs: number): () => void {
  return idleWaits.register(groupId, memberId, idleWaitMs);
}

export function applyKafkajsIdleFetchWait(): boolean {
  return patchKafkajsPrototype<ConsumerGroupLike>('consumer/consumerGroup.js', PATCHED, ['fetch'], (proto) => {
    const original = proto.fetch;
    proto.fetch = async function (this: ConsumerGroupLike, nodeId: number) {
      const idleWait = idleWaits.get(this.groupId, this.memberId);
      if (idleWait === undefined) return original.call(this, nodeId);
      const base = (this[BASE_WAIT] ??= this.maxWaitTime);
      const empty = (this[EMPTY_NODES] ??= new Set());
      const idle = empty.has(nodeId) && this.subscriptionState.paused().length === 0;
      this.maxWaitTime = idle ? Math.max(base, idleWait) : base;
      const batches = await original.call(this, nodeId);
      if (batches.every((batch) => batch.isEmpty())) empty.add(nodeId);
      else empty.delete(nodeId);
      return batches;
    };
  });
}
