import type { Admin } from 'kafkajs';
import type { Backlog } from '@busline/core/driver';

/**
 * A group's backlog on a topic as Kafka counts it (what
 * `kafka-consumer-groups.sh --describe` shows as LAG): per partition, the high
 * watermark minus the group's committed offset (the log start where it has
 * committed nothing). Kafka does not know what a member holds delivered but
 * uncommitted; `unsettled` is what this process's consumer of the group
 * holds, and the rest of the lag is `pending`. Undefined when the group has
 * committed nothing on the topic and has no consumer in this process.
 */
export async function describeBacklog(admin: Admin, topic: string, group: string, here: { member: boolean; held: number }): Promise<Backlog | undefined> {
  const [committed, ends] = await Promise.all([admin.fetchOffsets({ groupId: group, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
  const positions = new Map((committed.find((t) => t.topic === topic)?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  let lag = 0;
  let anyCommitted = false;
  for (const end of ends) {
    const position = positions.get(end.partition) ?? -1;
    if (position >= 0) anyCommitted = true;
    lag += Math.max(0, Number(end.high) - (position >= 0 ? position : Number(end.low)));
  }
  if (!anyCommitted && !here.member) return undefined;
  const unsettled = Math.min(here.held, lag);
  return { pending: lag - unsettled, unsettled };
}
