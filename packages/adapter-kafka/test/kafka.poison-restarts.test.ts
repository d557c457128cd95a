/**
 * Poison across restarts, with real processes on the real broker: a member
 * process (poison-member.mjs, built adapter) whose handler calls
 * process.exit(1) on one record is restarted every time it dies, the way a
 * deployment restarts a crashed pod. The attempts are counted in the commit
 * metadata: the first crash (many records in flight) is charged to none, then
 * the member hands out one record at a time and each crash is charged to the
 * poison, so after `maxAttempts` counted deaths the next delivery is
 * dead-lettered without running the handler; nothing else is lost (no other
 * record is dead-lettered) and the poison's key continues in order after it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeadLetterHeader } from '@busline/core';
import kafkajs from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { BROKERS, NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

/** Two keys that the producers' partitioner (murmur2, as the Java client) puts on partitions 0 and 1 of 2. */
function keysOnTwoPartitions(): [string, string] {
  const partitioner = kafkajs.Partitioners.DefaultPartitioner();
  const partitionMetadata = [0, 1].map((partitionId) => ({ partitionId, leader: 0 }));
  const on = (p: number) => {
    for (let i = 0; ; i++) if (partitioner({ topic: 't', partitionMetadata: partitionMetadata as never, message: { key: `k${i}`, value: null } }) === p) return `k${i}`;
  };
  return [on(0), on(1)];
}

const MEMBER = fileURLToPath(new URL('./poison-member.mjs', import.meta.url));
const MAX_ATTEMPTS = 3;

/** Runs the member process, starting it again each time it dies, until stopped. */
class Supervisor {
  deaths = 0;
  private child: ChildProcess | undefined;
  private stopping = false;
  private failure: Error | undefined;

  constructor(private readonly spec: Record<string, unknown>) {
    this.spawn();
  }

  private spawn(): void {
    const child = fork(MEMBER, [], { env: { ...process.env, BUSLINE_POISON_MEMBER: JSON.stringify(this.spec) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      if (code !== 1) {
        this.failure = new Error(`member exited unexpectedly (code ${code}, signal ${signal})`);
        return;
      }
      this.deaths++;
      if (this.deaths > MAX_ATTEMPTS + 2) this.failure = new Error(`the member died ${this.deaths} times: the poison is never dead-lettered`);
      else this.spawn();
    });
  }

  check(): void {
    if (this.failure) throw this.failure;
  }

  /** SIGTERM: the member closes its bus gracefully. */
  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited, 'graceful close exit code').toBe(0);
  }

  /** SIGKILL, not restarted; resolves once the process is gone (it writes nothing more). */
  kill(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    return exited;
  }
}

interface Log {
  /** `[kind, ...fields]` per line, in the order written (processes run one after another). */
  lines: string[][];
}

function readLog(path: string): Log {
  return { lines: readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')) };
}

async function deadLetters(topic: string): Promise<kafkajs.KafkaMessage[]> {
  const found: kafkajs.KafkaMessage[] = [];
  const reader = new kafkajs.Kafka({ brokers: BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING }).consumer({ groupId: unique('g-dlq-reader'), maxWaitTimeInMs: 100 });
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  await reader.run({ eachMessage: async ({ message }) => void found.push(message) });
  await until(() => found.length > 0, 30_000, `a record on ${topic}`);
  await reader.disconnect();
  return found;
}

describe.skipIf(NO_BROKER)('kafka: a record that kills its process is dead-lettered after maxAttempts, across restarts', () => {
  const f = kafkaFixture();
  const dir = mkdtempSync(join(tmpdir(), 'busline-poison-'));
  const supervisors: Supervisor[] = [];
  afterAll(() => {
    for (const s of supervisors) void s.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  async function setup(label: string, partitions: number) {
    const topic = unique(label);
    const group = unique(`g-${label}`);
    f.topics.push(topic, `${topic}.dlq`);
    const publisher = await f.bus({ topics: { [topic]: { partitions } } });
    await publisher.start();
    const log = join(dir, `${label}.log`);
    writeFileSync(log, '');
    const publish = async (seq: number, key: string, poison = false) => {
      await publisher.publish(topic, { seq, key, poison }, { aggregateId: key });
    };
    const member = () => {
      const s = new Supervisor({ brokers: BROKERS, topic, group, log, maxAttempts: MAX_ATTEMPTS });
      supervisors.push(s);
      return s;
    };
    return { topic, group, log, publish, member };
  }

  /** Every non-poison seq in `expected` handled, and the poison dead-lettered. */
  function finished(log: string, expected: number[], poison: number): boolean {
    const { lines } = readLog(log);
    const handled = new Set(lines.filter((l) => l[0] === 'h').map((l) => Number(l[2])));
    return lines.some((l) => l[0] === 'd' && Number(l[1]) === poison) && expected.every((s) => s === poison || handled.has(s));
  }

  function checkOutcome(log: string, poison: number, poisonKey: string, followers: number[]) {
    const { lines } = readLog(log);
    const runs = lines.filter((l) => l[0] === 'p').map((l) => Number(l[2]));
    const dead = lines.findIndex((l) => l[0] === 'd');
    expect(lines[dead], 'dead-lettered after maxAttempts counted attempts').toEqual(['d', String(poison), String(MAX_ATTEMPTS)]);
    expect(lines.filter((l) => l[0] === 'd')).toHaveLength(1);
    // The first handling of each later record of the poison's key comes after the dead letter, in publish order.
    const firsts: number[] = [];
    lines.forEach((l, i) => {
      if (l[0] !== 'h' || l[1] !== poisonKey || Number(l[2]) < poison || firsts.includes(Number(l[2]))) return;
      expect(i, `record ${l[2]} of the poison's key handled before the poison was dead-lettered`).toBeGreaterThan(dead);
      firsts.push(Number(l[2]));
    });
    expect(firsts, "the poison's key continues in order").toEqual(followers);
    return runs;
  }

  it('a poison among records in flight on two partitions: dead-lettered with attempts = maxAttempts, no other record charged, nothing lost', async () => {
    const { topic, log, publish, member } = await setup('poison-amid', 2);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    const poison = 20;
    const all = Array.from({ length: 60 }, (_, i) => i);
    for (const seq of all) await publish(seq, keys[seq % keys.length]!, seq === poison);
    const m = member();
    await until(() => (m.check(), finished(log, all, poison)), 240_000, () => `handled and dead-lettered (deaths so far ${m.deaths})`);
    await m.stop();

    const poisonKey = keys[poison % keys.length]!;
    const runs = checkOutcome(log, poison, poisonKey, all.filter((s) => s > poison && s % keys.length === poison % keys.length));
    // Each death is one run of the poison. The first crash, with many records in flight, is charged to none;
    // after it the member hands out one record at a time, and each crash is charged to the poison alone.
    expect(runs, 'ctx.attempt of each run of the poison').toEqual([1, 1, 2, 3]);
    expect(m.deaths).toBe(MAX_ATTEMPTS + 1);
    const dlq = await deadLetters(`${topic}.dlq`);
    expect(dlq).toHaveLength(1);
    expect(JSON.parse(dlq[0]!.value!.toString())).toMatchObject({ seq: poison, poison: true });
    expect(dlq[0]!.headers![DeadLetterHeader.attempts]!.toString()).toBe(String(MAX_ATTEMPTS));
    expect(dlq[0]!.headers![DeadLetterHeader.errorCode]!.toString()).toBe('HANDLER_FAILED');
  }, 300_000);

  it('an idle member keeps a mark charging nothing, a graceful close leaves it clean; a poison published to an idle member is dead-lettered the same way', async () => {
    const { topic, group, log, publish, member } = await setup('poison-first', 1);
    for (let seq = 0; seq < 5; seq++) await publish(seq, 'a');
    const m = member();
    await until(() => (m.check(), readLog(log).lines.filter((l) => l[0] === 'h').length === 5), 60_000, 'the first 5 handled');
    // Idle now: the routine commit moves the mark to offset 5, charging nothing, and keeps its window ahead
    // (records published next go without waiting for a commit); only a hand-over writes it clean.
    await until(async () => {
      const [entry] = await f.admin.fetchOffsets({ groupId: group, topics: [topic] });
      return /^busline-attempts\/1 5 0 \d+$/.test(entry?.partitions[0]?.metadata ?? '');
    }, 30_000, 'a mark at offset 5 charging nothing');

    const poison = 5;
    await publish(poison, 'a', true);
    for (let seq = 6; seq < 10; seq++) await publish(seq, 'a');
    const all = Array.from({ length: 10 }, (_, i) => i);
    await until(() => (m.check(), finished(log, all, poison)), 240_000, () => `handled and dead-lettered (deaths so far ${m.deaths})`);
    await m.stop();

    const runs = checkOutcome(log, poison, 'a', [6, 7, 8, 9]);
    expect(runs, 'ctx.attempt of each run of the poison').toEqual([1, 1, 2, 3]);
    expect(m.deaths).toBe(MAX_ATTEMPTS + 1);
    const [entry] = await f.admin.fetchOffsets({ groupId: group, topics: [topic] });
    expect(entry?.partitions[0], 'the graceful close committed everything with a clean mark').toMatchObject({ offset: '10', metadata: 'busline-attempts/1 10 0 9' });
    expect(await deadLetters(`${topic}.dlq`)).toHaveLength(1);
  }, 300_000);
  it('after a crash the partitions take turns: one with records waiting does not hold the turn until it runs dry', async () => {
    const { publish, member, log } = await setup('turns', 2);
    const [a, b] = keysOnTwoPartitions();
    const PER_KEY = 250;
    await Promise.all(Array.from({ length: PER_KEY }, (_, i) => [publish(2 * i, a), publish(2 * i + 1, b)]).flat());
    const handledOf = (lines: string[][]) => lines.filter((l) => l[0] === 'h');
    const first = member();
    await until(() => handledOf(readLog(log).lines).length >= 40, 60_000, '40 records handled by the first member');
    await first.kill();
    const before = readLog(log).lines.length;
    member();
    await until(() => new Set(handledOf(readLog(log).lines).map((l) => l[2])).size === 2 * PER_KEY, 120_000, () => `all ${2 * PER_KEY} records handled`);
    // The replacement runs one record at a time (the crash left both partitions suspect). Taking turns, each
    // partition gets about half of its first 200 handlings; holding the turn, one gets all of them.
    const next = handledOf(readLog(log).lines.slice(before)).slice(0, 200);
    const ofA = next.filter((l) => l[1] === a).length;
    expect(Math.min(ofA, next.length - ofA), `handlings of ${a} and ${b} among the replacement's first 200`).toBeGreaterThanOrEqual(50);
  }, 240_000);
});
