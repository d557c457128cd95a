import type { StreamConfig, SubjectTransformConfig } from '@nats-io/jetstream';

/**
 * How a partitioned topic lies in its stream. A topic with `partitions: N > 1`
 * is published to `<topic>.~k.<key token>`; the stream's subject transform
 * (nats-server ≥ 2.10) stores each message as
 * `<topic>.~k.<partition>.<key token>`, the partition being the server's
 * deterministic hash of the key token modulo N. Each (group, partition) has
 * its own durable consumer filtered on `<topic>.~k.<partition>.*`.
 *
 * `~` cannot occur in a topic name (core's topic rules), so `<topic>.~k.*`
 * never overlaps the subject of another topic, partitioned or not. A topic
 * with one partition keeps the plain subject `<topic>` and no transform,
 * exactly as streams made before partitions existed.
 */

const MARKER = '~k';
const PARTITION_EXPR = /\{\{\s*partition\(\s*(\d+)\s*,\s*1\s*\)\s*\}\}/i;
/** Keys usable as a subject token as they are; anything else is base64url-encoded behind `~`. */
const PLAIN_TOKEN = /^[A-Za-z0-9_:@/+=#|-][A-Za-z0-9_:@/+=#|~-]{0,127}$/;

export function partitionedSubjects(topic: string): string[] {
  return [`${topic}.${MARKER}.*`];
}

export function partitionTransform(topic: string, partitions: number): SubjectTransformConfig {
  return { src: `${topic}.${MARKER}.*`, dest: `${topic}.${MARKER}.{{partition(${partitions},1)}}.{{wildcard(1)}}` };
}

/** The stream's partition count: N for a stream partitioned by this layout, 1 for a plain one. */
export function partitionsOf(topic: string, config: Pick<StreamConfig, 'subject_transform' | 'subjects'>): number {
  const t = config.subject_transform;
  if (t === undefined || t.src !== `${topic}.${MARKER}.*`) return 1;
  const m = PARTITION_EXPR.exec(t.dest);
  return m ? Number(m[1]) : 1;
}

/** True when the stream stores `topic` (plain or partitioned). */
export function storesTopic(topic: string, config: Pick<StreamConfig, 'subjects'>): boolean {
  const subjects = config.subjects ?? [];
  return subjects.includes(topic) || subjects.includes(`${topic}.${MARKER}.*`);
}

/**
 * The subject token of an ordering key: injective, so two keys never share a
 * token (and the server's hash sends every message of a key to one
 * partition). Messages without a key use their event id: they have no order.
 */
export function keyToken(key: string): string {
  if (PLAIN_TOKEN.test(key)) return key;
  return `~${Buffer.from(key, 'utf8').toString('base64url')}`;
}

export function publishSubject(topic: string, key: string): string {
  return `${topic}.${MARKER}.${keyToken(key)}`;
}

export function partitionFilter(topic: string, partition: number): string {
  return `${topic}.${MARKER}.${partition}.*`;
}

/** The durable of one partition of a group: `<durable>-p<i>` (one partition: the durable itself). */
export function partitionDurable(durable: string, partition: number, partitions: number): string {
  return partitions === 1 ? durable : `${durable}-p${partition}`;
}
