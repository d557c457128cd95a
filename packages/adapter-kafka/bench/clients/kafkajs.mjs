// kafkajs behind the client comparison's interface (README in ../client-compare.mjs):
// configured as busline's driver configures it today.
import kafkajs from 'kafkajs';

const { Kafka, Partitioners, logLevel } = kafkajs;
export const packageName = 'kafkajs';

const client = (brokers) => new Kafka({ brokers, clientId: 'client-compare', logLevel: logLevel.NOTHING });

export async function openProducer({ brokers }) {
  const producer = client(brokers).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // The Java client's murmur2 partitioner, as busline's driver names it.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return {
    send: (topic, records) => producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: records }] }),
    close: () => producer.disconnect(),
  };
}

export async function startConsumer({ brokers, groupId, topic, partitions, commitIntervalMs, onRecord }) {
  const consumer = client(brokers).consumer({ groupId, maxWaitTimeInMs: 250, allowAutoTopicCreation: false });
  const next = new Map();
  const offsets = () => [...next].map(([partition, offset]) => ({ topic, partition, offset: String(offset) }));
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: partitions,
    // resolveOffset moves kafkajs's fetch position; without it (eachBatchAutoResolve off) the next fetch
    // read the same records again, and the commit below never reached the end.
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const message of batch.messages) {
        const headers = {};
        for (const name in message.headers) headers[name] = message.headers[name].toString();
        onRecord(batch.partition, Number(message.offset), message.value, headers);
        next.set(batch.partition, Number(message.offset) + 1);
        resolveOffset(message.offset);
      }
      await heartbeat();
    },
  });
  // Busline commits processed offsets on a timer, not per batch.
  const timer = setInterval(() => consumer.commitOffsets(offsets()).catch(() => {}), commitIntervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await consumer.commitOffsets(offsets());
      await consumer.disconnect();
    },
  };
}
