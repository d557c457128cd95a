/**
 * `bus.health({ backlog: true })` on Kafka reports the lag Kafka's own tool
 * reports: a group stuck behind a blocked handler with 40 records shows
 * pending + unsettled = the LAG column of `kafka-consumer-groups --describe`
 * (ConsumerGroupCommand, run by scripts/brokers kafka-tool), summed over the
 * topic's partitions.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { uniqueName } from '@busline/conformance';
import { BROKERS, NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

const brokers = fileURLToPath(new URL('../../../scripts/brokers', import.meta.url));

/** The LAG column of ConsumerGroupCommand --describe for `topic`, summed over its partitions. */
function toolLag(group: string, topic: string): number {
  const out = execFileSync(
    'bash',
    [brokers, 'kafka-tool', 'org.apache.kafka.tools.consumer.group.ConsumerGroupCommand', '--bootstrap-server', BROKERS.split(',')[0]!, '--describe', '--group', group],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines = out.split('\n').map((line) => line.trim().split(/\s+/));
  const header = lines.find((cols) => cols.includes('LAG'))!;
  const [topicAt, lagAt] = [header.indexOf('TOPIC'), header.indexOf('LAG')];
  const rows = lines.filter((cols) => cols[topicAt] === topic);
  // '-': nothing committed on that partition yet (not a number the tool can compare).
  if (rows.length === 0 || rows.some((cols) => cols[lagAt] === '-')) return Number.NaN;
  return rows.reduce((sum, cols) => sum + Number(cols[lagAt]), 0);
}

describe.skipIf(NO_BROKER)('kafka: backlog in health() equals the lag Kafka reports', () => {
  const f = kafkaFixture();

  it('a group stuck with 40 records on 3 partitions: health and kafka-consumer-groups agree', async () => {
    const topic = unique('backlog');
    f.topics.push(topic);
    const group = uniqueName('g-backlog');
    const bus = await f.bus({ topics: { [topic]: { partitions: 3 } } });
    let gate: Promise<void> = Promise.resolve();
    let release!: () => void;
    const handled = new Set<string>();
    await bus.subscribe(
      topic,
      async (_p, ctx) => {
        await gate;
        handled.add(ctx.envelope.id);
      },
      { group },
    );
    await bus.start();
    // First a round that is handled and committed on every partition: the tool shows a LAG only where the group committed.
    const first = await bus.publishBatch(
      topic,
      Array.from({ length: 30 }, (_, i) => ({ payload: { i }, aggregateId: `first-${i}` })),
    );
    await until(() => first.ids.every((id) => handled.has(id)), 60_000, 'the first round handled');
    await until(() => toolLag(group, topic) === 0, 60_000, 'the first round committed on every partition');
    gate = new Promise<void>((resolve) => (release = resolve));
    const batch = await bus.publishBatch(
      topic,
      Array.from({ length: 40 }, (_, i) => ({ payload: { i }, aggregateId: `k${i % 6}` })),
    );
    expect(batch.failed).toEqual([]);
    let backlog: { pending: number; unsettled: number } | undefined;
    await until(
      async () => {
        backlog = (await bus.health({ backlog: true })).subscriptions[0]?.backlog;
        return backlog !== undefined && backlog.unsettled > 0 && backlog.pending + backlog.unsettled === 40;
      },
      60_000,
      () => `a backlog of 40 with some held by the blocked member, got ${JSON.stringify(backlog)}`,
    );
    expect(toolLag(group, topic)).toBe(backlog!.pending + backlog!.unsettled);
    release();
  });
});
