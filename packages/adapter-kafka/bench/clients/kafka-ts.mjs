// kafka-ts behind the client comparison's interface (README in ../client-compare.mjs).
// Its producer is always idempotent with acks=-1; its consumer commits what onBatch resolved.
import kafkaTs from 'kafka-ts';

const { createKafkaClient, setLogger } = kafkaTs;
export const packageName = 'kafka-ts';

const silent = () => {};
setLogger({ debug: silent, info: silent, warn: silent, error: silent });

const client = (brokers) =>
  createKafkaClient({
    clientId: 'client-compare',
    bootstrapServers: brokers.map((b) => {
      const at = b.lastIndexOf(':');
      return { host: b.slice(0, at), port: Number(b.slice(at + 1)) };
    }),
  });

export async function openProducer({ brokers }) {
  const producer = client(brokers).createProducer({ allowTopicAutoCreation: false });
  return {
    send: (topic, records) => producer.send(records.map((r) => ({ topic, key: r.key, value: r.value, headers: r.headers }))),
    close: () => producer.close(),
  };
}

export async function startConsumer({ brokers, groupId, topic, onRecord }) {
  const consumer = await client(brokers).startConsumer({
    groupId,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 250,
    onBatch: (messages, { resolveOffset }) => {
      for (const message of messages) {
        const value = typeof message.value === 'string' ? Buffer.from(message.value) : message.value;
        onRecord(message.partition, Number(message.offset), value, message.headers);
        resolveOffset(message);
      }
    },
  });
  return { stop: () => consumer.close() };
}
