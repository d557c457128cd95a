/**
 * The adapter's faster kafkajs modules are in place only when the adapter
 * loads before kafkajs (kafkajs-replacements.ts). A process that imported
 * kafkajs first, or ran a kafkajs client first, must be told, once per bus,
 * not left to run slower in silence. Each case is a fresh Node process: a
 * module loaded once stays loaded for the whole process.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BROKERS, NO_BROKER } from './helpers.js';

/** The built adapter, as an application loads it (`pnpm test` builds first; run alone, build before). */
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const NOTICE = /^kafkajs's own .* in use instead of the adapter's faster replacements?: delivery is the same, but each record costs more CPU\. kafkajs was imported, or a kafkajs client fetched or produced, before @busline\/adapter-kafka loaded: import @busline\/adapter-kafka before anything that imports kafkajs\.$/;

/** A kafkajs producer and consumer of the process's own, each used once (so the fetch and produce requests load). */
const KAFKAJS_CLIENTS_FIRST = `
  const { default: kafkajs } = await import('kafkajs');
  const kafka = new kafkajs.Kafka({ brokers: ['${BROKERS}'], logLevel: kafkajs.logLevel.NOTHING });
  const topic = 'bl-kafka-replacements-' + Date.now();
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ value: 'x' }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: topic });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise((resolve) => consumer.run({ eachMessage: async () => resolve() }));
  await consumer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
`;

/** Runs `prelude`, then imports the adapter and starts and closes a bus (`kafka` section); its info log entries. */
function infoEntries(prelude: string, kafka: object = {}): { fields: Record<string, unknown>; message: string }[] {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
      ${prelude}
      const { adapter } = await import(${JSON.stringify(DIST)});
      const { createEventBus } = await import('@busline/core');
      const entries = [];
      const logger = { debug() {}, info: (fields, message) => entries.push({ fields, message }), warn() {}, error() {} };
      const bus = await createEventBus({ url: 'kafka://${BROKERS}', logger, kafka: ${JSON.stringify(kafka)} }, { adapter });
      await bus.start();
      await bus.close();
      console.log(JSON.stringify(entries));
    `,
    ],
    { cwd: PACKAGE },
  ).toString();
  const entries = JSON.parse(out.trim().split('\n').at(-1)!) as { fields: Record<string, unknown>; message: string }[];
  return entries.filter((e) => e.fields.kafka === 'kafkajs' && 'missing' in e.fields);
}

describe.skipIf(NO_BROKER)('kafkajs replacements and import order', () => {
  it('a bus in a process that loaded the adapter first says nothing about them', () => {
    expect(infoEntries('', { producer: { client: 'kafkajs' } })).toEqual([]);
  }, 60_000);

  it("a bus in a process that imported kafkajs first says, once, that Batch is kafkajs's own and what to do", () => {
    const entries = infoEntries("await import('kafkajs');");
    expect(entries).toHaveLength(1);
    // Batch is captured when kafkajs loads; the decoders and encoder only on a client's first fetch or produce.
    expect(entries[0]!.fields).toMatchObject({ kafkajsVersion: '2.2.4', missing: ['Batch'] });
    expect(entries[0]!.message).toMatch(NOTICE);
    expect(entries[0]!.message).toMatch(/^kafkajs's own Batch is in use instead of the adapter's faster replacement:/);
  }, 60_000);

  it('after a kafkajs producer and consumer of its own ran, the decoders are named too, and the encoder only for a bus that publishes through kafkajs', () => {
    for (const [client, missing] of [
      ['kafkajs', ['Batch', 'record batch decoder', 'record decoder', 'record encoder']],
      ['kafka-ts', ['Batch', 'record batch decoder', 'record decoder']],
    ] as const) {
      const entries = infoEntries(KAFKAJS_CLIENTS_FIRST, { producer: { client } });
      expect(entries, client).toHaveLength(1);
      expect(entries[0]!.fields.missing, client).toEqual(missing);
      expect(entries[0]!.message, client).toMatch(NOTICE);
    }
  }, 120_000);
});
