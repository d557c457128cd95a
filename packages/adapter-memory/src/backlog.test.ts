import { describe, expect, it } from 'vitest';
import { createEventBus } from '@busline/core';
import { adapter } from './index.js';
import { getMemoryBroker } from './memory-broker.js';

describe('describeBacklog', () => {
  it('equals the broker stats of a group whose consumer stopped with a known backlog', async () => {
    const name = `backlog-${process.pid}`;
    const bus = await createEventBus({ type: 'memory', group: 'reports', memory: { broker: name }, logger: false }, { adapter });
    await bus.start();
    let handled = 0;
    const sub = await bus.subscribe('ledger', () => void handled++);
    await bus.publish('ledger', { n: 0 });
    while (handled < 1) await new Promise((resolve) => setImmediate(resolve));
    await sub.unsubscribe();
    await bus.publishBatch('ledger', Array.from({ length: 7 }, (_, i) => ({ payload: { i } })));

    const group = getMemoryBroker(name).stats('ledger')!.groups.reports!;
    expect(group.undispatched).toBe(7);
    const backlog = await bus.driver.describeBacklog!('ledger', 'reports');
    expect(backlog).toEqual({ pending: group.undispatched + group.queued + group.delayed + group.parked, unsettled: group.unsettled });
    expect(backlog).toEqual({ pending: 7, unsettled: 0 });
    expect(await bus.driver.describeBacklog!('ledger', 'nobody')).toBeUndefined();
    await bus.close();
  });
});
