/**
 * Closing while the broker hangs: a bus with a running group consumer, on a
 * broker frozen with SIGSTOP (its connections stay open and nothing is
 * answered — a hung broker, a partition without resets). Before the fix,
 * `bus.close({ timeoutMs: 3000 })` took 212 s here (the final commit and the
 * group leave waited out kafkajs's request timeouts and retries). Now it
 * returns within its bound plus core's stated slack, names what it gave up
 * on, and loses nothing: once the broker is back, another member of the
 * group handles every message the closed one had not committed. And the
 * process can exit right after: the requests close gave up on kept it alive
 * 56 s before close ended the kafkajs connections (close-member.mjs).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createEventBus, type EventBus } from '@busline/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapter } from '../src/index.js';
import { NO_BROKER, unique, until, withProducerClient } from './helpers.js';
import { PrivateKafkaBroker } from './kafka-broker.js';

const TIMEOUT_MS = 3_000;
/** Core's stated slack past `timeoutMs` (the consumer's stop, its close and the driver's close each get ≥ 1 s plus 1 s grace), and 1 s for timers on a loaded machine. */
const SLACK_MS = 5_000 + 1_000;
const MESSAGES = 20;
/** How long a process may live on after its bus closed with the broker frozen (kafkajs's given-up requests kept it 56 s). */
const EXIT_WITHIN_MS = 5_000;
const MEMBER = fileURLToPath(new URL('./close-member.mjs', import.meta.url));

describe.skipIf(NO_BROKER)('kafka: closing while the broker is frozen', () => {
  let broker: PrivateKafkaBroker;
  beforeAll(async () => {
    broker = await PrivateKafkaBroker.start('frozen-close');
  }, 180_000);
  afterAll(async () => {
    broker?.thaw();
    await broker?.stop();
  }, 60_000);

  it(`bus.close({ timeoutMs: ${TIMEOUT_MS} }) returns within its bound, says what it gave up on, and nothing is lost`, { timeout: 180_000 }, async () => {
    const topic = unique('frozen-close');
    const group = unique('g');
    const config = (extra: object = {}) => ({
      url: `kafka://${broker.brokers}`,
      logger: false as const,
      topics: { [topic]: { partitions: 2 } },
      // A short session, so the next member does not wait long for the frozen one to be dropped.
      kafka: withProducerClient({ consumer: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 2_000, rebalanceTimeoutMs: 10_000 }, ...extra }),
    });
    const first: EventBus = await createEventBus(config(), { adapter });
    const errors: { code: string | undefined; message: string }[] = [];
    first.on('error', (error) => errors.push({ code: (error as { code?: string }).code, message: error.message }));
    await first.start();
    const handled = new Set<number>();
    await first.subscribe(topic, (payload) => void handled.add((payload as { n: number }).n), { group });
    for (let n = 0; n < MESSAGES; n++) await first.publish(topic, { n }, { aggregateId: `k${n % 4}` });
    await until(() => handled.size === MESSAGES, 60_000, () => `handled ${handled.size} of ${MESSAGES} before the freeze`);

    broker.freeze();
    const started = Date.now();
    await first.close({ timeoutMs: TIMEOUT_MS });
    const took = Date.now() - started;
    process.stdout.write(`close with a frozen broker took ${took} ms; errors: ${JSON.stringify(errors)}\n`);
    expect(took, 'close returned within timeoutMs plus core slack').toBeLessThan(TIMEOUT_MS + SLACK_MS);
    expect(errors.some((e) => e.code === 'BROKER_UNAVAILABLE' && /gave up on .*commit/.test(e.message)), 'close names the commit it gave up on').toBe(true);
    broker.thaw();

    // Whatever the closed member had not committed reaches the next member: together they handled every message.
    const second: EventBus = await createEventBus(config(), { adapter });
    try {
      await second.start();
      const again = new Set<number>();
      await second.subscribe(topic, (payload) => void again.add((payload as { n: number }).n), { group });
      await second.publish(topic, { n: MESSAGES }, { aggregateId: 'k0' });
      await until(() => again.has(MESSAGES), 120_000, 'the next member handling a message published after the thaw');
      const missing = Array.from({ length: MESSAGES }, (_, n) => n).filter((n) => !handled.has(n) && !again.has(n));
      expect(missing, 'messages handled by neither member').toEqual([]);
    } finally {
      await second.close({ timeoutMs: 5_000 });
    }
  });

  it(`a process exits by itself within ${EXIT_WITHIN_MS} ms of bus.close() returning, with the broker frozen`, { timeout: 180_000 }, async () => {
    const spec = { brokers: broker.brokers, topic: unique('frozen-exit'), group: unique('g'), messages: MESSAGES, timeoutMs: TIMEOUT_MS, kafka: withProducerClient() };
    const member = fork(MEMBER, [], { env: { ...process.env, BUSLINE_CLOSE_MEMBER: JSON.stringify(spec) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = once(member, 'exit');
    try {
      const [ready] = (await Promise.race([once(member, 'message'), exited.then(() => ['exited'])])) as unknown[];
      expect(ready, 'the member handled its messages').toBe('ready');
      broker.freeze();
      member.send('close');
      const [report] = (await once(member, 'message')) as [{ closedInMs: number; errors: { code?: string; message: string }[] }];
      const closedAt = Date.now();
      const [code] = (await exited) as [number | null];
      const lingered = Date.now() - closedAt;
      process.stdout.write(`close took ${report.closedInMs} ms, the process exited ${lingered} ms later; errors: ${JSON.stringify(report.errors)}\n`);
      expect(report.errors.some((e) => e.code === 'BROKER_UNAVAILABLE' && /connections to the broker were closed/.test(e.message)), 'close named what it gave up on').toBe(true);
      expect(code, 'exit code').toBe(0);
      expect(lingered, 'time from close() returning to the process exiting').toBeLessThan(EXIT_WITHIN_MS);
    } finally {
      broker.thaw();
      member.kill('SIGKILL');
    }
  });
});
