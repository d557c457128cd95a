// Group throughput: a backlog on a partitioned topic drained by 1, 2 and 4
// member processes of one group (partitioned consumer groups; each member
// pulls the partitions assigned to it, keys in parallel inside each).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MEMBER = fileURLToPath(new URL('./group-member.mjs', import.meta.url));

/**
 * Publishes `messages` (1,000 keys) to a fresh topic with `partitions`, then
 * starts `members` processes at once and times until they handled them all.
 */
export async function groupDrain({ url, newBus, topic, members, partitions, messages, handlerMs, concurrency, maxAckPending }) {
  const publisher = await newBus();
  await publisher.configureTopic(topic, { persistence: 'persistent', partitions });
  const body = { text: 'x'.repeat(200) };
  for (let from = 0; from < messages; from += 5_000) {
    const calls = [];
    for (let i = from; i < Math.min(messages, from + 5_000); i++) calls.push(publisher.publish(topic, body, { aggregateId: `k-${i % 1_000}` }));
    await Promise.all(calls);
  }
  await publisher.close();
  const group = `bench${Date.now().toString(36)}${members}`;
  const spec = { url, topic, group, handlerMs, concurrency, maxAckPending };
  const children = [];
  const counts = new Array(members).fill(0);
  for (let i = 0; i < members; i++) {
    const child = fork(MEMBER, [], { env: { ...process.env, BENCH_MEMBER: JSON.stringify(spec) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`bench member exited (${code})`)));
      child.on('message', (m) => {
        if (m.ready) resolve();
        if (m.handled !== undefined) counts[i] = m.handled;
      });
    });
  }
  const start = process.hrtime.bigint();
  for (const child of children) child.send('go');
  const deadline = Date.now() + 600_000;
  while (counts.reduce((a, b) => a + b, 0) < messages) {
    if (Date.now() > deadline) throw new Error(`group drain: ${counts.reduce((a, b) => a + b, 0)} of ${messages} after 600 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  for (const child of children) {
    child.removeAllListeners('exit');
    child.send('stop');
  }
  await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', resolve)))));
  return { ms, perMember: counts };
}
