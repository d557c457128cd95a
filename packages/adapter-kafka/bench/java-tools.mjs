// Kafka's own Java ProducerPerformance and ConsumerPerformance, run from the jars
// scripts/brokers caches: the ceiling every Node client is compared with
// (pnpm bench:kafka and pnpm bench:kafka-clients).
import { spawn } from 'node:child_process';
import { kafkaLibs } from '../test/kafka-libs.mjs';

/** Runs one of Kafka's Java tools by main class; resolves with `parse(output)` or `{ skipped }`. */
function runJavaTool(mainClass, args, parse) {
  const libs = kafkaLibs();
  if (!libs) return Promise.resolve({ skipped: 'no Kafka jars (run scripts/brokers up kafka, or set BUSLINE_KAFKA_LIBS)' });
  return new Promise((resolveRun) => {
    const child = spawn('java', ['-Xmx512m', '-cp', `${libs}/*`, mainClass, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (error) => resolveRun({ skipped: `java: ${error.message}` }));
    child.on('close', (code) => {
      const result = code === 0 ? parse(out) : undefined;
      resolveRun(result ?? { skipped: `${mainClass.split('.').pop()} exited ${code}: ${out.trim().split('\n').slice(-3).join(' | ')}` });
    });
  });
}

/**
 * ProducerPerformance: `count` records of `size` bytes, no key, no headers, acks=all
 * (the Java client is idempotent by default), as fast as it can or at `throughput`
 * records/s. Resolves with `{ rate, p50, p99, line }` (latencies in ms, send to
 * acknowledgement) or `{ skipped }`.
 */
export function producerPerformance({ brokers, topic, count, size, throughput = -1 }) {
  return runJavaTool(
    'org.apache.kafka.tools.ProducerPerformance',
    ['--topic', topic, '--num-records', String(count), '--record-size', String(size), '--throughput', String(throughput), '--producer-props', `bootstrap.servers=${brokers.join(',')}`, 'acks=all'],
    (out) => {
      const line = out.split('\n').filter((l) => / records sent, /.test(l)).pop();
      const m = line && /records sent, ([\d.]+) records\/sec/.exec(line);
      const ms = (label) => Number(new RegExp(`(\\d+) ms ${label}`).exec(line ?? '')?.[1]);
      return m ? { rate: Math.round(Number(m[1])), p50: ms('50th'), p99: ms('99th'), line: line.trim() } : undefined;
    },
  );
}

/** ConsumerPerformance: reads `count` records of `topic` in a new group (no order kept). Resolves with `{ rate, line }` or `{ skipped }`. */
export function consumerPerformance({ brokers, topic, count }) {
  return runJavaTool(
    'org.apache.kafka.tools.ConsumerPerformance',
    ['--bootstrap-server', brokers.join(','), '--topic', topic, '--messages', String(count), '--group', `bench-cperf-${Date.now()}`, '--timeout', '60000'],
    (out) => {
      // CSV: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
      const lines = out.trim().split('\n');
      const header = lines.findIndex((l) => l.includes('nMsg.sec'));
      if (header < 0 || !lines[header + 1]) return undefined;
      const names = lines[header].split(',').map((x) => x.trim());
      const values = lines[header + 1].split(',').map((x) => x.trim());
      const rate = Number(values[names.indexOf('nMsg.sec')]);
      return Number.isFinite(rate) && rate > 0 ? { rate: Math.round(rate), line: `${values[names.indexOf('data.consumed.in.nMsg')]} records, ${Math.round(rate)} records/sec` } : undefined;
    },
  );
}
