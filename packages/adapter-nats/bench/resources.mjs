// Resources of one bus as subscribed topics grow: 1, 10, 100 topics, each with a subscription
// and 100 messages consumed. Each size runs in a fresh process (node --expose-gc) so figures
// do not mix.
//
//   node packages/adapter-nats/bench/resources.mjs          (after tsc -b; BUSLINE_NATS_URL as for tests)
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createEventBus } from '@busline/core';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { adapter, streamNameFor } from '../dist/index.js';

const URL_ = process.env.BUSLINE_NATS_URL ?? 'nats://127.0.0.1:4222';
const SIZES = (process.env.RESOURCE_TOPICS ?? '1,10,100').split(',').map(Number);

function handles() {
  const counts = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

async function measure(topics) {
  const run = `res${process.pid.toString(36)}`;
  const bus = await createEventBus({ url: URL_, group: 'res', source: 'res' }, { adapter });
  await bus.start();
  global.gc();
  const base = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
  const names = Array.from({ length: topics }, (_, i) => `${run}-t${i}`);
  let handled = 0;
  for (const topic of names) {
    await bus.configureTopic(topic, {});
    await bus.subscribe(topic, () => void handled++);
  }
  for (const topic of names) {
    const r = await bus.publishBatch(topic, Array.from({ length: 100 }, (_, i) => ({ payload: { i }, aggregateId: `k${i % 10}` })));
    if (r.failed.length) throw r.failed[0].error;
  }
  while (handled < topics * 100) await new Promise((r) => setTimeout(r, 20));
  // Let acks flush and the pull loops settle into their idle state.
  await new Promise((r) => setTimeout(r, 1_500));
  global.gc();
  const mem = process.memoryUsage();
  const nc = bus.driver.connection;
  const subs = nc?.protocol?.subscriptions?.size?.() ?? nc?.protocol?.subscriptions?.subs?.size;
  const result = {
    topics,
    handles: handles(),
    heapMB: +(mem.heapUsed / 1048576).toFixed(1),
    heapDeltaMB: +((mem.heapUsed - base.heap) / 1048576).toFixed(2),
    rssMB: +(mem.rss / 1048576).toFixed(1),
    natsSubscriptions: subs,
    connections: 1,
  };
  await bus.close();
  const admin = await connect({ servers: URL_.replace(/^nats:\/\//, '') });
  const jsm = await jetstreamManager(admin);
  for (const topic of names) await jsm.streams.delete(streamNameFor(topic, 'BL_')).catch(() => undefined);
  await admin.close();
  return result;
}

if (process.argv[2] === 'child') {
  const r = await measure(Number(process.argv[3]));
  process.send(r);
  process.exit(0);
} else {
  const rows = [];
  for (const n of SIZES) {
    const child = fork(fileURLToPath(import.meta.url), ['child', String(n)], { execArgv: ['--expose-gc'] });
    rows.push(await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => code && reject(new Error(`child exited ${code}`)));
    }));
  }
  console.log('| subscribed topics | active handles (process.getActiveResourcesInfo) | NATS subscriptions | connections | heap used (delta) | RSS |');
  console.log('| ---: | --- | ---: | ---: | --- | ---: |');
  for (const r of rows) {
    const h = Object.entries(r.handles).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`| ${r.topics} | ${h} | ${r.natsSubscriptions ?? '?'} | ${r.connections} | ${r.heapMB} MB (+${r.heapDeltaMB} MB) | ${r.rssMB} MB |`);
  }
}
