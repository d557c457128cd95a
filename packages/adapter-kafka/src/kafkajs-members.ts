/**
 * What this adapter registers for one member of a kafkajs consumer group,
 * found again from inside kafkajs's own ConsumerGroup (whose instance the
 * public consumer API never hands out) by its group id and member id. A
 * member id is unique in its group (the coordinator makes it), so several
 * buses and consumers in one process never share an entry.
 */
export class MemberRegistry<T> {
  private readonly entries = new Map<string, T>();

  /** Registers `value` for member `memberId` of `groupId`; returns its removal. */
  register(groupId: string, memberId: string, value: T): () => void {
    const key = `${groupId}\u0000${memberId}`;
    this.entries.set(key, value);
    return () => {
      if (this.entries.get(key) === value) this.entries.delete(key);
    };
  }

  /** The entry of a member; undefined before its first join (no member id yet). */
  get(groupId: string, memberId: string | null): T | undefined {
    return memberId ? this.entries.get(`${groupId}\u0000${memberId}`) : undefined;
  }
}
