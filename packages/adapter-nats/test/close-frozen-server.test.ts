/**
 * Closing while the server hangs: a bus with a durable consumer and a
 * handled message, the server then frozen (SIGSTOP: connections stay open,
 * nothing is answered). `bus.close({ timeoutMs })` must return within its
 * bound plus core's stated slack (core's CloseDeadline), and once the server
 * runs again another member of the group handles whatever the closed one
 * had not acknowledged.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '@busline/conformance';
import { ownServerFixture, SKIP, topicName } from './helpers.js';
import { PrivateNatsServer } from './nats-server.js';

const TIMEOUT_MS = 3_000;
/** Core's stated slack past `timeoutMs` (the consumer's stop, its close and the driver's close each get ≥ 1 s plus 1 s grace), and 1 s for timers on a loaded machine. */
const SLACK_MS = 5_000 + 1_000;
const MESSAGES = 20;

describe.skipIf(SKIP)('nats: closing while the server is frozen (own server)', () => {
  const own = ownServerFixture(() => PrivateNatsServer.start('frozen-close'));

  it(`bus.close({ timeoutMs: ${TIMEOUT_MS} }) returns within its bound and nothing is lost`, { timeout: 60_000 }, async () => {
    const server = own.server;
    const topic = topicName('frozen-close');
    const group = `g${Date.now().toString(36)}`;
    const first = await own.buses.make(server.url);
    await first.configureTopic(topic, { persistence: 'persistent' });
    const handled = new Set<number>();
    await first.subscribe(topic, (payload) => void handled.add((payload as { n: number }).n), { group });
    for (let n = 0; n < MESSAGES; n++) await first.publish(topic, { n }, { aggregateId: `k${n % 4}` });
    await waitFor(() => handled.size === MESSAGES, { timeoutMs: 30_000, message: () => `handled ${handled.size} of ${MESSAGES} before the freeze` });

    process.kill(server.pid!, 'SIGSTOP');
    let took: number;
    try {
      const started = Date.now();
      await first.close({ timeoutMs: TIMEOUT_MS });
      took = Date.now() - started;
    } finally {
      process.kill(server.pid!, 'SIGCONT');
    }
    process.stdout.write(`nats: close with a frozen server took ${took} ms\n`);
    expect(took, 'close returned within timeoutMs plus core slack').toBeLessThan(TIMEOUT_MS + SLACK_MS);

    const second = await own.buses.make(server.url);
    const again = new Set<number>();
    await second.subscribe(topic, (payload) => void again.add((payload as { n: number }).n), { group });
    await second.publish(topic, { n: MESSAGES }, { aggregateId: 'k0' });
    await waitFor(() => again.has(MESSAGES), { timeoutMs: 60_000, message: 'the next member handling a message published after the thaw' });
    const missing = Array.from({ length: MESSAGES }, (_, n) => n).filter((n) => !handled.has(n) && !again.has(n));
    expect(missing, 'messages handled by neither member').toEqual([]);
  });
});
