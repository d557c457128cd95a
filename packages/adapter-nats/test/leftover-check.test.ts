/** LeftoverCheck against a stand-in hub: when it asks the server about an earlier bus's leftovers. */
import { describe, expect, it } from 'vitest';
import type { ConsumerInfo } from '@nats-io/jetstream';
import { NO_DRIVER_HOOKS, type DriverHooks } from '@busline/core';
import { CumulativeAcks } from '../src/index.js';
import type { ConsumerHub } from '../src/consumer-hub.js';
import { LeftoverCheck } from '../src/leftover-check.js';

function harness() {
  const errors: string[] = [];
  const calls: string[] = [];
  const state = { connected: true };
  const hooks: DriverHooks = { ...NO_DRIVER_HOOKS, error: (e) => void errors.push(e.message) };
  const hub = {
    get isConnected() {
      return state.connected;
    },
    config: { ackWaitMs: 1_000 },
    hooks,
    nc: { isClosed: () => false },
    jsm: {
      consumers: {
        info: async () => {
          calls.push('consumer info');
          if (!state.connected) throw new Error('TIMEOUT');
          return { ack_floor: { stream_seq: 0 } };
        },
      },
      streams: {
        info: async () => {
          calls.push('stream info');
          return { state: { first_seq: 1, last_seq: 10, deleted: [] } };
        },
      },
    },
  } as unknown as ConsumerHub;
  const acks = new CumulativeAcks({ send() {}, schedule: () => undefined, hooks });
  const check = new LeftoverCheck(hub, acks, 'orders', 'S', 'D');
  return { check, acks, calls, errors, state };
}

const earlierBus = { ack_floor: { stream_seq: 0 }, delivered: { stream_seq: 3 }, num_ack_pending: 3 } as unknown as ConsumerInfo;

describe('LeftoverCheck', () => {
  it('tracks an earlier bus\'s unacknowledged messages, then checks them on the tick once the ack wait passed', async () => {
    const { check, acks, calls } = harness();
    await check.prepare(earlierBus, 2_000);
    expect(acks.leftovers).toBe(3);
    calls.length = 0;
    check.tick(Date.now());
    expect(calls, 'not before the ack wait and the stale time').toEqual([]);
    check.tick(Date.now() + 3_001);
    expect(calls).toEqual(['consumer info']);
  });

  it('does not ask the server while disconnected (those requests only time out and report errors); asks again once connected', async () => {
    const { check, calls, errors, state } = harness();
    await check.prepare(earlierBus, 2_000);
    calls.length = 0;
    state.connected = false;
    check.tick(Date.now() + 60_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual([]);
    expect(errors).toEqual([]);
    state.connected = true;
    check.tick(Date.now() + 60_000);
    expect(calls).toEqual(['consumer info']);
  });
});
