/**
 * `bus.health({ backlog: true })` on NATS reports what the server's own tool
 * reports: a group stuck behind a blocked handler with a known backlog shows
 * the same num_pending and num_ack_pending in health as in `nats consumer
 * info` (natscli, built by scripts/brokers), on a plain and a partitioned topic.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { uniqueName, waitFor } from '@busline/conformance';
import { durableNameFor } from '../src/names.js';
import { partitionDurable } from '../src/partition-layout.js';
import { serverPins, sharedServerFixture, SHARED_URL, SKIP, streamOf, topicName } from './helpers.js';

const brokers = fileURLToPath(new URL('../../../scripts/brokers', import.meta.url));
const execFileAsync = promisify(execFile);
const PINS = !SKIP && (await serverPins(SHARED_URL));

/** num_pending + num_ack_pending of each durable, as natscli (at `nats`) reports them. */
function natsConsumerInfo(nats: string, stream: string, durables: string[]): { pending: number; unsettled: number } {
  let pending = 0;
  let unsettled = 0;
  for (const durable of durables) {
    const info = JSON.parse(execFileSync(nats, ['-s', SHARED_URL, 'consumer', 'info', stream, durable, '--json'], { encoding: 'utf8' })) as {
      num_pending: number;
      num_ack_pending: number;
    };
    pending += info.num_pending;
    unsettled += info.num_ack_pending;
  }
  return { pending, unsettled };
}

describe.skipIf(SKIP)('nats: backlog in health() equals the server tool', () => {
  const { buses } = sharedServerFixture();
  let nats = '';
  // Built from source on a fresh machine (go install, minutes on 2 cores): before the tests, not inside one.
  beforeAll(async () => {
    nats = (await execFileAsync('bash', [brokers, 'natscli-bin'], { encoding: 'utf8' })).stdout.trim();
  }, 900_000);

  for (const partitions of PINS ? [1, 3] : [1]) {
    it(`a group stuck with 40 messages (${partitions} partition${partitions > 1 ? 's' : ''}): health and \`nats consumer info\` agree`, async () => {
      const topic = topicName(`backlog${partitions}`);
      const group = uniqueName('bg');
      const bus = await buses.make(SHARED_URL, { subscription: { maxInFlight: 8 } });
      if (partitions > 1) await bus.configureTopic(topic, { persistence: 'persistent', partitions });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      await bus.subscribe(topic, () => gate, { group });
      const batch = await bus.publishBatch(
        topic,
        Array.from({ length: 40 }, (_, i) => ({ payload: { i }, aggregateId: `k${i % 6}` })),
      );
      expect(batch.failed).toEqual([]);
      // Settled state: everything either pulled (up to maxInFlight) or waiting, and no longer moving.
      let previous = '';
      let backlog: { pending: number; unsettled: number } | undefined;
      await waitFor(
        async () => {
          backlog = (await bus.health({ backlog: true })).subscriptions[0]?.backlog;
          const now = JSON.stringify(backlog);
          const stable = backlog !== undefined && backlog.pending + backlog.unsettled === 40 && now === previous;
          previous = now;
          return stable;
        },
        { timeoutMs: 20_000, intervalMs: 300, message: () => `a stable backlog of 40, got ${previous}` },
      );
      const durable = durableNameFor(group, topic, false);
      const tool = natsConsumerInfo(
        nats,
        streamOf(topic),
        Array.from({ length: partitions }, (_, p) => partitionDurable(durable, p, partitions)),
      );
      expect(tool).toEqual(backlog);
      expect(backlog!.unsettled, 'the blocked member holds some').toBeGreaterThan(0);
      release();
    });
  }
});
