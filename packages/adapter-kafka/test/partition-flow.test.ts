/** PartitionFlow without a broker: what happens to records core's sink refuses by throwing. */
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { NO_DRIVER_HOOKS, type DeliveredMessage, type MessageSink } from '@busline/core/driver';
import { kafkaConfigSchema } from '../src/config.js';
import { OffsetCommitter } from '../src/offset-committer.js';
import { PartitionFlow } from '../src/partition-flow.js';
import { PartitionState } from '../src/partition-state.js';
import { SubscriptionRouter } from '../src/subscription-router.js';

function record(offset: number): KafkaMessage {
  return { offset: String(offset), key: null, value: Buffer.from('x'), timestamp: '0', attributes: 0, headers: {} } as KafkaMessage;
}

function harness(sink: MessageSink) {
  const errors: string[] = [];
  const router = new SubscriptionRouter(new Map(), () => undefined);
  const entry = router.add({ topic: 't', group: 'g', persistence: 'persistent', maxInFlight: 10, startFrom: 'earliest' }, sink);
  router.routeActive();
  const flow = new PartitionFlow(router, {
    config: kafkaConfigSchema.parse({ brokers: ['127.0.0.1:9092'] }).consumer,
    hooks: { ...NO_DRIVER_HOOKS, error: (e: Error) => void errors.push(e.message) },
    committer: { commit: async () => undefined } as unknown as OffsetCommitter,
    consumer: () => undefined,
  });
  const state = new PartitionState('t', 0);
  state.ledger.begin(-1, null, 10, 1_000);
  state.accept([5, 6, 7].map(record));
  // The attempt mark a fresh partition stores before it delivers (see attempt-ledger.test.ts).
  expect(state.ledger.allowance(state, 10, false)).toBe(0);
  const mark = state.ledger.compose(state)!;
  state.committed = mark.offset;
  state.ledger.stored(mark);
  flow.states.set(state.key, state);
  flow.accepting = true;
  return { flow, state, entry, errors };
}

describe('PartitionFlow', () => {
  it('hands records to the sink within its budget and takes their settlements back', async () => {
    const got: DeliveredMessage[] = [];
    const { flow, state, entry } = harness({ deliver: (batch: DeliveredMessage[]) => void got.push(...batch), recall() {} } as unknown as MessageSink);
    flow.pump(state);
    expect(got.map((d) => d.deliveryId)).toEqual(['0:5', '0:6', '0:7']);
    expect([flow.unsettled, entry.inflight]).toEqual([3, 3]);
    for (const d of got) d.ack();
    expect([flow.unsettled, entry.inflight]).toEqual([0, 0]);
    expect(await flow.drain(1)).toBe(true);
  });

  it('a sink that throws: the error is reported and the records are given back, so nothing waits for them', async () => {
    const { flow, state, entry, errors } = harness({
      deliver: () => {
        throw new Error('the pool refused');
      },
      recall() {},
    } as unknown as MessageSink);
    flow.pump(state);
    expect(errors).toEqual(['the pool refused']);
    expect([flow.unsettled, entry.inflight, state.unsettled], 'nothing counted as in flight').toEqual([0, 0, 0]);
    expect(state.nacked, 'commits stop before them: they are read again').toBe(true);
    expect(await flow.drain(1_000), 'a drain does not wait out its timeout').toBe(true);
  });
});
