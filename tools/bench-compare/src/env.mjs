// The environment a run happened in, and the fairness facts printed next to
// the results (durability, storage, batching, partitions vs streams, versions),
// read from the running brokers where they can tell us.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { buildEnvelope, encodeEnvelope } from '@busline/core';
import { clientVersions, natsServerVersion } from './targets.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function git(args) {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** Machine, Node and git facts. */
export function machine() {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    memoryGB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    gitCommit: git(['rev-parse', 'HEAD']),
    gitDirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '').length > 0,
    gitDirtyFiles: (git(['diff', '--name-only', 'HEAD']) ?? '').split('\n').filter(Boolean),
    clients: clientVersions(),
  };
}

/** The Kafka version scripts/brokers runs (what formatted the data dir, else the script's default). */
export function kafkaVersion() {
  try {
    const formatted = fs.readFileSync(path.join(REPO, '.tmp/brokers/kafka/formatted-by'), 'utf8').trim();
    if (formatted) return { version: formatted, source: '.tmp/brokers/kafka/formatted-by (scripts/brokers)' };
  } catch {}
  try {
    const script = fs.readFileSync(path.join(REPO, 'scripts/brokers'), 'utf8');
    const m = /KAFKA_VERSION=\$\{BUSLINE_KAFKA_VERSION:-([^}]+)\}/.exec(script);
    if (m) return { version: process.env.BUSLINE_KAFKA_VERSION || m[1], source: 'scripts/brokers KAFKA_VERSION' };
  } catch {}
  return { version: 'unknown', source: '' };
}

/** Broker-side settings that decide durability, asked from the running broker (DescribeConfigs). */
export async function kafkaBrokerSettings(brokers) {
  const names = /^(log\.flush\.|default\.replication\.factor|min\.insync\.replicas|num\.partitions|num\.io\.threads|num\.network\.threads|unclean\.leader)/;
  const kafka = new kafkajs.Kafka({ brokers, clientId: 'bench-info', logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  /** @type {Record<string, string>} */
  const values = {};
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    const res = await admin.describeConfigs({ includeSynonyms: false, resources: cluster.brokers.map((b) => ({ type: kafkajs.ConfigResourceTypes.BROKER, name: String(b.nodeId) })) });
    for (const e of res.resources[0]?.configEntries ?? []) if (names.test(e.configName)) values[e.configName] = `${e.configValue}${e.isDefault ? ' (default)' : ''}`;
    return { source: 'DescribeConfigs on the running broker', brokers: cluster.brokers.length, values };
  } catch (error) {
    return { source: `unavailable: ${error instanceof Error ? error.message : error}`, values };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** JetStream settings from the monitoring endpoint (/varz), if reachable. */
export async function natsServerSettings(natsUrl) {
  const out = { version: undefined, syncInterval: undefined, storeDir: undefined, source: '' };
  try {
    out.version = await natsServerVersion(natsUrl);
  } catch {}
  try {
    const host = new URL(natsUrl.split(',')[0].replace(/^nats:/, 'http:')).hostname;
    const res = await fetch(`http://${host}:8222/varz`, { signal: AbortSignal.timeout(2_000) });
    const varz = await res.json();
    out.version ??= varz.version;
    const js = varz.jetstream?.config ?? {};
    out.syncInterval = js.sync_interval ?? js.sync ?? undefined;
    out.syncAlways = js.sync_always;
    out.storeDir = js.store_dir;
    out.source = `http://${host}:8222/varz`;
  } catch {}
  if (!out.version) {
    try {
      out.version = execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).trim();
    } catch {}
  }
  return out;
}

const num = (n) => Number(n).toLocaleString('en-US');

/** What busline puts on the wire for one benchmark message: body and header bytes (names + values). */
export function wireSize(size) {
  const wire = encodeEnvelope(buildEnvelope(new Uint8Array(size), { aggregateId: 'agg-123' }, { type: 'bc-abcdefghij-t0', source: 'bench-compare' }));
  let headerBytes = 0;
  for (const [k, v] of Object.entries(wire.headers)) headerBytes += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  return { body: wire.body.length, headers: Object.keys(wire.headers).length, headerBytes };
}

/**
 * The fairness section: what each side promises when a publish resolves, and
 * how the two are set up. Broker values are the ones read at run time.
 * @param {{ brokers: string[], kafka?: any, nats?: any, partitions: number, topics: number, concurrency: number, clients: Record<string, string|undefined>, natsCfg: any, kafkaCfg: any }} input
 */
export function fairness({ brokers, kafka, nats, partitions, topics, concurrency, clients, natsCfg, kafkaCfg, size }) {
  if (!brokers.includes('nats') && !brokers.includes('kafka')) return [];
  const flush = kafka?.settings?.values ?? {};
  const v = (name, fallback) => flush[name] ?? `${fallback} (not read)`;
  const natsSync = nats?.syncInterval
    ? `file store fsync every ${nats.syncInterval} (sync_interval, read from /varz)${nats.syncAlways ? ', sync_always on' : ''}`
    : `nats-server ${nats?.version ?? '?'} reports no sync_interval (the setting and its /varz field arrived in 2.10, nats-server PR #4483); acked messages are written to the file store through the OS page cache and synced in the background (default 2 min in the server sources, defaultSyncInterval; docs: "sync_interval … defaults to 2m")`;
  const p = kafkaCfg.producer;
  const c = kafkaCfg.consumer;
  return [
    ['durability: when a publish resolves', 'the stream stored the message and sent its PubAck (JetStream acked publish); busline and the raw baseline both await it', `acks=all (-1): every in-sync replica has the batch; busline (acks ${p.acks}, idempotent ${p.idempotent}) and the raw baseline (acks -1, idempotent) alike`],
    ['replication', 'R1 (num_replicas 1), one server', `replication factor 1, one broker (default.replication.factor ${v('default.replication.factor', 1)}, min.insync.replicas ${v('min.insync.replicas', 1)})`],
    ['fsync', natsSync, `log.flush.interval.messages ${v('log.flush.interval.messages', '9223372036854775807')}, log.flush.interval.ms ${v('log.flush.interval.ms', 'null')}: no forced flush, the OS page cache writes back (${kafka?.settings?.source ?? 'not read'})`],
    ['→ in short', 'neither side fsyncs before acknowledging; both survive a broker process crash, neither a machine crash within the sync window', ''],
    ['storage', `file (JetStream file store; busline storage "${natsCfg.storage}", raw "file")`, 'file (Kafka log segments)'],
    ['topics', `one stream per topic (subject = topic), ${topics} streams per run, one durable pull consumer per stream`, `${topics} topics × ${partitions} partitions per run (key = aggregate id), one consumer group over all topics`],
    ['publish path', `busline: up to ${num(natsCfg.publishWindow)} publishes in flight (publishWindow), writes coalesced per event-loop turn, Nats-Msg-Id = event id (dedupe window ${natsCfg.duplicateWindowMs / 1000} s); raw: js.publish per message with a Nats-Msg-Id, ${num(concurrency)} in flight`, `busline: batcher, linger ${p.lingerMs} ms, ≤ ${num(p.maxBatchMessages)} msgs / ${num(p.maxBatchBytes)} B per sendBatch, ${p.maxInFlightBatches} batch in flight; raw: one sendBatch in flight with everything queued meanwhile, same size limits`],
    ['consume path', `busline: pulls of ${natsCfg.pullBatch}, ack mode ${natsCfg.ackMode}, max_ack_pending = maxInFlight; raw: consume({ max_messages: 500 }), m.ack() per message, max_ack_pending 1,000`, `busline: eachBatch, ${c.partitionsConsumedConcurrently} partitions at once, offsets committed every ${c.commitIntervalMs} ms up to the ack watermark; raw: eachBatch, 4 partitions at once, offsets committed every 1 s (commitOffsets; autoCommit off, as in busline)`],
    (() => {
      const w = wireSize(size);
      return ['one message on the wire', `busline: ${w.body} B body + ${w.headers} headers (${w.headerBytes} B: CloudEvents attributes, content type) — raw: ${size} B body + Nats-Msg-Id header`, `busline: ${w.body} B value + key + ${w.headers} headers (${w.headerBytes} B) — raw: ${size} B value + key, no headers`];
    })(),
    ['what busline adds', 'CloudEvents envelope in headers (UUIDv7 id, type, source, time, subject), per-key ordering pool, retry / dead-letter machinery armed, metrics', 'the same'],
    ['versions', `nats-server ${nats?.version ?? 'unknown'}; @nats-io/transport-node ${clients['@nats-io/transport-node'] ?? '?'}, @nats-io/jetstream ${clients['@nats-io/jetstream'] ?? '?'}`, `Apache Kafka ${kafka?.version?.version ?? 'unknown'} (KRaft, single node; ${kafka?.version?.source ?? ''}); kafkajs ${clients.kafkajs ?? '?'}`],
  ];
}
