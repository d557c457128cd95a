/**
 * kafkajs's own consumer loop (Runner, FetchManager, fetchers) with a stand-in
 * for the ConsumerGroup, which is where it talks to brokers: a stop() that
 * lands while the fetchers are rebuilt for a changed broker set must end them.
 * Without the fix the rebuilt fetchers loop on Runner.fetch without any I/O;
 * the stand-in's getNodeIds (called on every turn of that loop) breaks the
 * loop after SPIN_CAP turns so this test fails instead of hanging its worker.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { applyKafkajsStopFix } from '../src/kafkajs-stop-fix.js';

const SPIN_CAP = 10_000;

interface RunnerLike {
  running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}
type RunnerClass = new (options: Record<string, unknown>) => RunnerLike;
const Runner = createRequire(import.meta.url)('kafkajs/src/consumer/runner.js') as RunnerClass;

const logger = {
  namespace: () => logger,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}

describe('kafkajs stop fix', () => {
  it('is applied to kafkajs 2.2.4', () => {
    expect(applyKafkajsStopFix()).toBe(true);
    expect(applyKafkajsStopFix()).toBe(true);
  });

  it('stop() while the fetchers are rebuilt for a changed broker set ends the rebuilt fetchers (kafkajs looped on them without I/O for ever)', async () => {
    applyKafkajsStopFix();
    let nodes = [1, 2];
    let stopping = false;
    let turnsAfterStop = 0;
    let nodeIdsCalls = 0;
    // Broker 2's fetch is a long poll the test ends; broker 1's returns at once, empty.
    let endLongPoll: (() => void) | undefined;
    const group = {
      groupId: 'g',
      memberId: 'm',
      connect: async () => undefined,
      joinAndSync: async () => undefined,
      leave: async () => undefined,
      heartbeat: async () => undefined,
      getNodeIds: () => {
        nodeIdsCalls++;
        if (stopping && ++turnsAfterStop > SPIN_CAP) throw new Error(`fetched ${SPIN_CAP} times after stop() without I/O`);
        return [...nodes];
      },
      fetch: (nodeId: number) =>
        nodeId === 2 && endLongPoll === undefined ? new Promise<unknown[]>((resolve) => (endLongPoll = () => resolve([]))) : tick().then(() => []),
    };
    const runner = new Runner({
      logger,
      consumerGroup: group,
      instrumentationEmitter: { emit: () => undefined },
      eachBatch: async () => undefined,
      onCrash: () => undefined,
      retry: { retries: 1, initialRetryTime: 10 },
      autoCommit: false,
    });
    await runner.start();
    await until(() => endLongPoll !== undefined, "broker 2's long poll");

    // Broker 2 leaves the metadata: broker 1's fetcher throws KafkaJSFetcherRebalanceError at its
    // next fetch, and the fetch manager waits for broker 2's long poll before it rebuilds.
    nodes = [1];
    const seen = nodeIdsCalls;
    await until(() => nodeIdsCalls > seen, "broker 1's next fetch");
    await tick();

    stopping = true;
    const stopped = runner.stop();
    // The long poll returns; the fetch manager rebuilds its fetchers (broker 1 only) after stop().
    endLongPoll!();
    await stopped;

    expect(runner.running).toBe(false);
    expect(turnsAfterStop, 'fetch-loop turns after stop()').toBeLessThan(10);
    // Nothing keeps fetching afterwards.
    const after = turnsAfterStop;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(turnsAfterStop).toBe(after);
  });
});
