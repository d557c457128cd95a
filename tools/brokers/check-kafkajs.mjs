// Exercises the Kafka protocol APIs kafkajs uses against a running broker and
// reports each step. Usage (brokers up): node tools/brokers/check-kafkajs.mjs [host:port,...]
import kafkajs from 'kafkajs';
const { Kafka, logLevel, CompressionTypes } = kafkajs;

const brokers = (process.argv[2] ?? process.env.BUSLINE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const kafka = new Kafka({ clientId: 'kafkajs-compat', brokers, logLevel: logLevel.WARN, retry: { retries: 3 } });
const admin = kafka.admin();
const topic = `compat-${Date.now()}`;
const step = async (name, fn) => {
  const t = Date.now();
  try { const r = await fn(); console.log(`ok   ${name} (${Date.now() - t} ms)`); return r; }
  catch (e) { console.log(`FAIL ${name}: ${e.name}: ${e.message}`); process.exitCode = 1; }
};

await admin.connect();
const cluster = await step('describeCluster', () => admin.describeCluster());
console.log('     brokers:', cluster?.brokers.map((b) => `${b.nodeId}@${b.host}:${b.port}`).join(' '), 'controller', cluster?.controller);
await step('createTopics', () => admin.createTopics({ topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '3600000' }] }], waitForLeaders: true }));
await step('listTopics', async () => { if (!(await admin.listTopics()).includes(topic)) throw new Error('topic not listed'); });
await step('fetchTopicMetadata', () => admin.fetchTopicMetadata({ topics: [topic] }));
await step('describeConfigs', () => admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false }));
await step('alterConfigs', () => admin.alterConfigs({ resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }] }));
await step('createPartitions', () => admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] }));

const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
await step('produce (idempotent, acks=-1, 100 msgs)', () => producer.send({ topic, acks: -1, messages: Array.from({ length: 100 }, (_, i) => ({ key: `k${i % 10}`, value: `v${i}`, headers: { h: 'x' } })) }));
await step('produce (gzip)', () => producer.send({ topic, compression: CompressionTypes.GZIP, messages: [{ key: 'g', value: 'gzip' }] }));
await step('sendBatch', () => producer.sendBatch({ topicMessages: [{ topic, messages: [{ key: 'b', value: 'batch' }] }] }));

const tx = kafka.producer({ transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1 });
await tx.connect();
await step('transaction commit', async () => { const t = await tx.transaction(); await t.send({ topic, messages: [{ key: 't', value: 'tx' }] }); await t.commit(); });
await tx.disconnect();

await step('fetchTopicOffsets (ListOffsets)', () => admin.fetchTopicOffsets(topic));
await step('fetchTopicOffsetsByTimestamp', () => admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - 60000));

const groupId = `g-${topic}`;
const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
let n = 0;
const got = new Promise((resolve) => {
  consumer.run({ autoCommitInterval: 200, eachMessage: async () => { if (++n >= 103) resolve(); } });
});
let timer;
await step('consumer group join/sync/heartbeat + fetch 103 msgs', () => Promise.race([got, new Promise((_, r) => { timer = setTimeout(() => r(new Error(`timeout, got ${n}`)), 30000); })]));
clearTimeout(timer);
await new Promise((r) => setTimeout(r, 1500)); // heartbeats + auto commit
await step('describeGroups', async () => { const d = await admin.describeGroups([groupId]); if (d.groups[0].state !== 'Stable') throw new Error(d.groups[0].state); });
await step('listGroups', () => admin.listGroups());
await consumer.stop();
await consumer.disconnect();
await step('fetchOffsets (committed)', async () => { const o = await admin.fetchOffsets({ groupId, topics: [topic] }); const sum = o[0].partitions.reduce((s, p) => s + Number(p.offset), 0); if (sum < 103) throw new Error(`committed ${sum}`); });
await step('setOffsets', () => admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '0' }] }));
await step('resetOffsets', () => admin.resetOffsets({ groupId, topic, earliest: true }));
await step('deleteTopicRecords', () => admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '1' }] }));
await step('deleteGroups', () => admin.deleteGroups([groupId]));
await step('deleteTopics', () => admin.deleteTopics({ topics: [topic] }));
await producer.disconnect();
await admin.disconnect();
console.log(process.exitCode ? 'kafkajs compatibility: FAILED' : 'kafkajs compatibility: all steps ok');
