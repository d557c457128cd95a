// @platformatic/kafka behind the client comparison's interface (README in ../client-compare.mjs).
// Needs Node >= 22.22: client-compare runs it on scripts/node-runtime's binary.
import { Consumer, MessagesStreamFallbackModes, MessagesStreamModes, Producer, compatibilityPartitioner, stringDeserializer, stringSerializer } from '@platformatic/kafka';

export const packageName = '@platformatic/kafka';

export async function openProducer({ brokers }) {
  const producer = new Producer({
    clientId: 'client-compare',
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: -1,
    autocreateTopics: false,
    // Its default partitioner does not match the Java client's; this one does (its docs).
    partitioner: compatibilityPartitioner,
    serializers: { key: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer },
  });
  return {
    send: (topic, records) => producer.send({ messages: records.map((r) => ({ topic, key: r.key, value: r.value, headers: r.headers })) }),
    close: () => producer.close(),
  };
}

export async function startConsumer({ brokers, groupId, topic, commitIntervalMs, onRecord }) {
  const consumer = new Consumer({
    clientId: 'client-compare',
    groupId,
    bootstrapBrokers: brokers,
    maxWaitTime: 250,
    // Its autocommit marks offsets when records are fetched, before they are processed: busline commits what it processed.
    autocommit: false,
    deserializers: { headerKey: stringDeserializer, headerValue: stringDeserializer },
  });
  const next = new Map();
  const offsets = () => [...next].map(([partition, { offset, leaderEpoch }]) => ({ topic, partition, offset, leaderEpoch }));
  const stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.COMMITTED, fallbackMode: MessagesStreamFallbackModes.EARLIEST });
  stream.on('data', (message) => {
    onRecord(message.partition, Number(message.offset), message.value, Object.fromEntries(message.headers));
    next.set(message.partition, { offset: message.offset + 1n, leaderEpoch: message.leaderEpoch });
  });
  const timer = setInterval(() => consumer.commit({ offsets: offsets() }).catch(() => {}), commitIntervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await consumer.commit({ offsets: offsets() });
      await stream.close();
      await consumer.close();
    },
  };
}
