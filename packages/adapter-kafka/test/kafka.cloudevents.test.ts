/**
 * CloudEvents on the Kafka wire, seen by plain kafkajs clients: busline writes
 * the Kafka binding's `ce_` headers (the SDK's Kafka binding recognises the
 * record), still reads records busline wrote before with `ce-` headers (the
 * migration), and a `{ foreign: true }` subscriber reads a plain record a
 * producer that knows nothing of busline wrote, with the offset as id and the
 * record timestamp as time.
 */
import { describe, expect, it } from 'vitest';
import kafkajs, { type KafkaMessage } from 'kafkajs';
import { Kafka as CloudEventsKafka, type Message } from 'cloudevents';
import { Collector, uniqueName } from '@busline/conformance';
import type { Envelope } from '@busline/core';
import { BROKERS, NO_BROKER, kafkaFixture, unique, until } from './helpers.js';

const client = () => new kafkajs.Kafka({ brokers: BROKERS.split(','), logLevel: kafkajs.logLevel.NOTHING });

/** The first `count` records of `topic`, read with a plain kafkajs consumer. */
async function readRaw(topic: string, count: number): Promise<KafkaMessage[]> {
  const records: KafkaMessage[] = [];
  const reader = client().consumer({ groupId: unique('g-raw'), maxWaitTimeInMs: 100 });
  await reader.connect();
  try {
    await reader.subscribe({ topic, fromBeginning: true });
    await reader.run({ eachMessage: async ({ message }) => void records.push(message) });
    await until(() => records.length >= count, 60_000, `${count} record(s) of ${topic}, read raw`);
  } finally {
    await reader.disconnect();
  }
  return records;
}

describe.skipIf(NO_BROKER)('kafka: CloudEvents binding and foreign records on the wire', () => {
  const f = kafkaFixture();

  it('a published event is a record with ce_ headers that the SDK Kafka binding parses', async () => {
    const topic = unique('ce-wire');
    f.topics.push(topic);
    const bus = await f.bus({ topics: { [topic]: { partitions: 1 } } });
    await bus.start();
    const receipt = await bus.publish(topic, { total: 5 }, { aggregateId: 'order-1' });

    const records = await readRaw(topic, 1);
    const record = records[0]!;
    const headers = Object.fromEntries(Object.entries(record.headers ?? {}).map(([name, value]) => [name, String(value)]));
    expect(Object.keys(headers).filter((name) => name.startsWith('ce-')), 'no ce- headers on Kafka').toEqual([]);
    expect(headers.ce_id).toBe(receipt.id);
    expect(record.key?.toString()).toBe('order-1');
    const kafkaMessage = { key: record.key?.toString(), headers, value: record.value, body: undefined } as unknown as Message;
    expect(CloudEventsKafka.isEvent(kafkaMessage)).toBe(true);
    const event = CloudEventsKafka.toEvent(kafkaMessage) as { id: string; type: string; subject: string; data: unknown };
    expect(event).toMatchObject({ id: receipt.id, type: topic, subject: 'order-1', data: { total: 5 } });
  });

  it('in structured content mode a record is the aggregate id as key, one content-type header and the event as JSON value', async () => {
    const topic = unique('ce-structured');
    f.topics.push(topic);
    const bus = await f.bus({ contentMode: 'structured', topics: { [topic]: { partitions: 3 } } });
    await bus.start();
    const receipt = await bus.publish(topic, { total: 5 }, { aggregateId: 'order-1', correlationId: 'corr-1' });
    const batch = await bus.publishBatch(topic, [{ payload: Uint8Array.from([1, 2, 3]), aggregateId: 'order-2' }]);

    const records = await readRaw(topic, 2);
    const byKey = new Map(records.map((r) => [r.key?.toString(), r]));
    for (const [key, id, data] of [['order-1', receipt.id, { total: 5 }], ['order-2', batch.ids[0], new Uint8Array([1, 2, 3])]] as const) {
      const record = byKey.get(key);
      expect(record, `the record keyed ${key}`).toBeDefined();
      const headers = Object.fromEntries(Object.entries(record!.headers ?? {}).map(([name, value]) => [name, String(value)]));
      expect(headers, 'one header').toEqual({ 'content-type': 'application/cloudevents+json; charset=utf-8' });
      const kafkaMessage = { key, headers, value: record!.value, body: undefined } as unknown as Message;
      expect(CloudEventsKafka.isEvent(kafkaMessage)).toBe(true);
      const event = CloudEventsKafka.toEvent(kafkaMessage) as { id: string; type: string; subject: string; data: unknown };
      expect(event).toMatchObject({ id, type: topic, subject: key });
      if (data instanceof Uint8Array) expect(Buffer.from(event.data as Uint8Array).equals(Buffer.from(data))).toBe(true);
      else expect(event.data).toEqual(data);
    }
  });

  // Written as busline wrote them before the Kafka binding change: ce- names, the aggregate id in ce-subject.
  it('records busline wrote with ce- headers before the change still decode; a plain record reaches a foreign subscriber', async () => {
    const topic = unique('ce-legacy');
    f.topics.push(topic);
    const bus = await f.bus({ topics: { [topic]: { partitions: 1 } } });
    await bus.start();
    const producer = client().producer();
    await producer.connect();
    const writtenAt = Date.now();
    try {
      await producer.send({
        topic,
        messages: [
          {
            key: 'acct-1',
            headers: { 'ce-specversion': '1.0', 'ce-id': 'legacy-1', 'ce-type': 'orders', 'ce-source': 'old-busline', 'ce-subject': 'acct-1', 'ce-time': new Date(writtenAt).toISOString(), 'content-type': 'application/json' },
            value: '{"legacy":true}',
          },
          { key: 'acct-2', value: 'plain text from another service' },
        ],
      });
    } finally {
      await producer.disconnect();
    }
    const decoded = new Collector<Envelope>();
    const foreign = new Collector<Envelope>();
    await bus.subscribeEnvelope(topic, (e) => void decoded.add(e.id, e), { group: uniqueName('g-default'), deadLetter: false });
    await bus.subscribeEnvelope(topic, (e) => void foreign.add(e.id, e), { group: uniqueName('g-foreign'), foreign: true });

    await decoded.waitForIds(['legacy-1'], 60_000, 'the legacy record');
    expect(decoded.items.get('legacy-1')).toMatchObject({ type: 'orders', source: 'old-busline', aggregateId: 'acct-1', payload: { legacy: true } });
    await foreign.waitForIds([`${topic}:0:1`], 60_000, 'the plain record, id = topic:partition:offset');
    const plain = foreign.items.get(`${topic}:0:1`)!;
    expect(plain).toMatchObject({ type: topic, aggregateId: 'acct-2', payload: 'plain text from another service' });
    expect(Math.abs(plain.time!.getTime() - writtenAt), 'the record timestamp').toBeLessThan(60_000);
    expect(decoded.has(`${topic}:0:1`), 'the default subscriber does not handle it').toBe(false);
  });
});
