import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { DriverHooks } from '@busline/core/driver';

/**
 * Who the live members of one (stream, group) are, kept in the broker: a KV
 * bucket (`busline-groups`) with one key per member,
 * `<stream>.<durable>.<member id>`, written when the member joins and every
 * `ttlMs / 3` after (on the bus's one housekeeping tick, so beats are at
 * most a second late), deleted when it leaves. Every member lists the keys of
 * its group once and then follows their updates live (a plain subscription
 * to the bucket's subjects: no consumer and no timer per group); a member not
 * heard of for `ttlMs` (it crashed, or lost its connection) counts as gone.
 *
 * Claims: a member pulls a partition only while it holds the partition's
 * claim, `<stream>.<durable>.claim.p<i>` = its id, taken with a
 * compare-and-set (created if absent, taken over from a member that is gone).
 * So two members never pull one partition at once, even while they briefly
 * disagree about the membership — the server's redelivery queue turns over
 * when pull requests wait that it may not serve (see PullConsumer).
 *
 * Neither membership nor claims decide who may handle a partition's
 * messages: that is the consumer's pin (see PartitionedConsumer), so even a
 * claim taken from a member wrongly thought gone cannot make two members
 * handle one key.
 */

export const MEMBERS_BUCKET = 'busline-groups';

export interface MembershipOptions {
  nc: NatsConnection;
  apiTimeoutMs: number;
  stream: string;
  durable: string;
  memberId: string;
  ttlMs: number;
  /** Replicas of the bucket when this member creates it (the topic's stream's). */
  replicas: number;
  hooks: DriverHooks;
  isConnected: () => boolean;
  onChange: (members: string[]) => void;
}

export class GroupMembership {
  private kv: KV | undefined;
  private sub: Subscription | undefined;
  private readonly lastSeen = new Map<string, number>();
  private lastBeat = 0;
  private joinedAt = 0;
  private published: string[] = [];
  private left = false;
  private readonly key: string;
  private readonly prefix: string;

  constructor(private readonly options: MembershipOptions) {
    this.prefix = `${options.stream}.${options.durable}`;
    this.key = `${this.prefix}.${options.memberId}`;
  }

  /** Sorted ids of the members alive now (this one always included). */
  get members(): string[] {
    const now = Date.now();
    const alive = new Set<string>([this.options.memberId]);
    for (const [id, seen] of this.lastSeen) if (now - seen < this.options.ttlMs) alive.add(id);
    return [...alive].sort();
  }

  async join(): Promise<void> {
    const o = this.options;
    const kvm = new Kvm(jetstream(o.nc, { timeout: o.apiTimeoutMs }));
    const kv = await kvm.create(MEMBERS_BUCKET, { history: 1, replicas: o.replicas, ttl: 24 * 3600_000 });
    this.kv = kv;
    this.joinedAt = Date.now();
    // Live updates first, so nothing written while listing is missed.
    this.sub = o.nc.subscribe(`$KV.${MEMBERS_BUCKET}.${this.prefix}.*`, {
      callback: (error, msg) => {
        if (error === null) this.onUpdate(msg);
      },
    });
    await this.beat();
    const now = Date.now();
    for await (const key of await kv.keys(`${this.prefix}.*`)) {
      const entry = await kv.get(key);
      const id = key.slice(this.prefix.length + 1);
      // The server's write time: a member silent for ttlMs is gone.
      if (entry !== null && entry.operation === 'PUT' && !this.lastSeen.has(id)) this.lastSeen.set(id, Math.min(now, entry.created.getTime()));
    }
    this.publish();
  }

  private onUpdate(msg: Msg): void {
    const id = msg.subject.slice(`$KV.${MEMBERS_BUCKET}.${this.prefix}.`.length);
    const operation = msg.headers?.get('KV-Operation');
    if (operation === 'DEL' || operation === 'PURGE') this.lastSeen.delete(id);
    else this.lastSeen.set(id, Date.now());
    this.publish();
  }

  private claimKey(partition: number): string {
    return `${this.prefix}.claim.p${partition}`;
  }

  /** Takes the partition's claim if it is free, ours, or held by a member that is gone; false if another live member holds it. */
  async claim(partition: number): Promise<boolean> {
    const kv = this.kv;
    if (kv === undefined || this.left) return false;
    const key = this.claimKey(partition);
    const me = this.options.memberId;
    try {
      const entry = await kv.get(key);
      if (entry === null || entry.operation !== 'PUT') {
        if (entry === null) await kv.create(key, me);
        else await kv.update(key, me, entry.revision);
        return true;
      }
      const holder = entry.string();
      if (holder === me) return true;
      // Gone: not heard of for ttlMs — which only this member's own ttlMs of listening can tell.
      if (this.members.includes(holder) || Date.now() - this.joinedAt < this.options.ttlMs) return false;
      await kv.update(key, me, entry.revision);
      this.options.hooks.count('claims_taken_over');
      return true;
    } catch {
      // Someone else wrote first (wrong last sequence), or the bucket is unavailable: not ours now.
      return false;
    }
  }

  /** Whether this member still holds the partition's claim (false when unknown). */
  async holds(partition: number): Promise<boolean> {
    try {
      const entry = await this.kv?.get(this.claimKey(partition));
      return entry !== null && entry !== undefined && entry.operation === 'PUT' && entry.string() === this.options.memberId;
    } catch {
      return true; // cannot tell now: keep the partition (its pin still fences it)
    }
  }

  /** Gives the claim back, if it is still ours. */
  async unclaim(partition: number): Promise<void> {
    const kv = this.kv;
    if (kv === undefined || !this.options.isConnected()) return;
    try {
      const entry = await kv.get(this.claimKey(partition));
      if (entry !== null && entry.operation === 'PUT' && entry.string() === this.options.memberId) {
        await kv.delete(this.claimKey(partition), { previousSeq: entry.revision });
      }
    } catch {
      // Taken over once this member counts as gone.
    }
  }

  /** Called about once a second (the consumer hub's housekeeping tick): beats, and notices members gone silent. */
  tick(now: number): void {
    if (now - this.lastBeat >= this.options.ttlMs / 3) void this.beat();
    this.publish();
  }

  private async beat(): Promise<void> {
    if (this.left || this.kv === undefined) return;
    this.lastBeat = Date.now();
    try {
      await this.kv.put(this.key, JSON.stringify({ at: Date.now() }));
    } catch {
      // The bucket is unavailable for now (leader change, reconnect): the next beat tries again.
      this.options.hooks.count('membership_beats_failed');
    }
  }

  /** Tells onChange when the live set differs from what it was last told. */
  private publish(): void {
    if (this.left) return;
    const members = this.members;
    if (members.length === this.published.length && members.every((m, i) => m === this.published[i])) return;
    this.published = members;
    this.options.onChange(members);
  }

  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    this.sub?.unsubscribe();
    if (!this.options.isConnected()) return;
    try {
      await this.kv?.delete(this.key);
    } catch {
      // The others stop counting this member after ttlMs.
    }
  }
}

/** The partitions member `me` owns: with the members sorted, partition p goes to member p mod count. */
export function assignedPartitions(members: readonly string[], me: string, partitions: number): number[] {
  const index = members.indexOf(me);
  if (index < 0) return [];
  const mine: number[] = [];
  for (let p = index; p < partitions; p += members.length) mine.push(p);
  return mine;
}
