import crc32c from 'crc-32/crc32c.js';
import { KAFKA_TS_ORIGINAL as ORIGINAL, kafkaTsModule } from './kafka-ts-internals.js';

/**
 * kafka-ts 1.5 turns each batch of messages into a produce request in two
 * steps, both costly per record with busline's eight envelope headers:
 * - ProducerBuffer.createRequest makes a record object per message, with an
 *   array of `{ key, value }` objects from `Object.entries(headers)` and a
 *   BigInt timestamp delta (a third of the publisher's allocations);
 * - createBatch (`api/produce/common.js`) makes a new Encoder per record,
 *   turns every key, value, header name and header value into a Buffer of
 *   its own (`Buffer.from`, which copies a value that already is one) before
 *   copying it in, copies the batch body twice more to put the header in
 *   front, and computes the CRC-32C a byte at a time.
 * Profiled, Buffer allocation, copies and their garbage collection were
 * ~30 % of the publisher's CPU, the CRC 4 %.
 *
 * This replaces both: createRequest hands the messages themselves to
 * createBatch (the partition noted in OF_MESSAGES), and createBatch writes
 * the same bytes kafka-ts writes into one buffer sized for the batch: ASCII
 * text byte by byte with no intermediate Buffer, other text with one
 * `write`, Buffers with one copy, the CRC-32C from the `crc-32` package
 * (slicing-by-16, about 4x faster). A partition not so noted goes to
 * kafka-ts's own createBatch. The produce requests (v3, v9, v13) look
 * createBatch up on the module at every call, so replacing the export is
 * enough. If kafka-ts moved either (another version), nothing changes.
 */

/** A message as kafka-ts's producer takes it (`producer.send`), the partition chosen. */
export interface KafkaTsMessage {
  topic: string;
  partition?: number;
  key?: string | Uint8Array | null;
  value: string | Uint8Array | null;
  headers?: Record<string, string | Uint8Array | null>;
  timestamp?: bigint;
}

/** A partition's batch as createRequest hands it to createBatch (ours: its messages as records). */
export interface KafkaTsPartitionBatch {
  index: number;
  baseOffset: bigint;
  partitionLeaderEpoch: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: bigint;
  maxTimestamp: bigint;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  records: unknown[];
}

/** kafka-ts's Encoder, as far as createBatch's callers use it. */
export interface KafkaTsEncoder {
  buffer: Buffer;
  offset: number;
  getBufferLength(): number;
}

/** The produce request createRequest returns: `generation` is the producer id's, for its sequence bookkeeping. */
export interface KafkaTsProduceRequest {
  generation: number;
  topicData: { name: string; topicId: string; partitionData: KafkaTsPartitionBatch[] }[];
}

/** The members of kafka-ts's ProducerBuffer createRequest uses. */
export interface ProducerBufferLike {
  options: {
    state: {
      isInitialized: boolean;
      initProducerId(): Promise<void>;
      generation: number;
      producerId: bigint;
      producerEpoch: number;
      getSequence(topic: string, partition: number): number;
    };
    metadata: { getTopicIdByName(name: string): string };
  };
}

type CreateBatch = ((partition: KafkaTsPartitionBatch) => KafkaTsEncoder) & { [ORIGINAL]?: CreateBatch };
type CreateRequest = ((this: ProducerBufferLike, batch: KafkaTsMessage[]) => Promise<KafkaTsProduceRequest>) & { [ORIGINAL]?: CreateRequest };
interface CommonModule {
  createBatch: CreateBatch;
}
interface ProducerBufferModule {
  ProducerBuffer: { prototype: { createRequest: CreateRequest } };
}

/** Partition batches whose records are the messages as sent (our createRequest made them), with the time a message without a timestamp gets. */
const OF_MESSAGES = new WeakMap<KafkaTsPartitionBatch, bigint>();
/** baseOffset, batchLength, partitionLeaderEpoch, magic, crc: the part in front of what the CRC covers. */
const HEAD = 8 + 4 + 4 + 1 + 4;
/** attributes … baseSequence, and the record count. */
const BODY_HEAD = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;

/** kafka-ts's own createRequest and createBatch (for the byte-for-byte test), whether or not they were replaced. */
export function originalKafkaTs(): { createRequest: CreateRequest; createBatch: CreateBatch } | undefined {
  const common = kafkaTsModule<CommonModule>('api/produce/common.js');
  const buffer = kafkaTsModule<ProducerBufferModule>('producer/producer-buffer.js')?.ProducerBuffer.prototype;
  if (common === undefined || buffer === undefined) return undefined;
  return { createRequest: buffer.createRequest[ORIGINAL] ?? buffer.createRequest, createBatch: common.createBatch[ORIGINAL] ?? common.createBatch };
}

/** Puts both replacements in place, or neither (false: this kafka-ts lacks what they replace). */
export function applyKafkaTsRecordBatch(): boolean {
  const common = kafkaTsModule<CommonModule>('api/produce/common.js');
  const buffer = kafkaTsModule<ProducerBufferModule>('producer/producer-buffer.js')?.ProducerBuffer.prototype;
  const Encoder = kafkaTsModule<{ Encoder: new (capacity?: number) => KafkaTsEncoder }>('utils/encoder.js')?.Encoder;
  if (common === undefined || buffer === undefined || Encoder === undefined) return false;
  if (typeof common.createBatch !== 'function' || typeof buffer.createRequest !== 'function') return false;
  if (common.createBatch[ORIGINAL] !== undefined) return true;
  const originalBatch = common.createBatch;
  const createBatch: CreateBatch = (partition) => {
    const defaultTimestamp = OF_MESSAGES.get(partition);
    if (defaultTimestamp === undefined) return originalBatch(partition);
    const encoder = new Encoder(maxBatchSize(partition));
    encoder.offset = writeBatch(encoder.buffer, partition, defaultTimestamp);
    return encoder;
  };
  Object.defineProperty(createBatch, ORIGINAL, { value: originalBatch });
  Object.defineProperty(createRequest, ORIGINAL, { value: buffer.createRequest });
  common.createBatch = createBatch;
  buffer.createRequest = createRequest;
  return true;
}

/**
 * kafka-ts's ProducerBuffer.createRequest, the same request but for the
 * records: each partition's are its messages as sent, in order.
 */
const createRequest: CreateRequest = async function (this: ProducerBufferLike, batch) {
  const { state, metadata } = this.options;
  if (!state.isInitialized) await state.initProducerId();
  const generation = state.generation;
  const byTopic = new Map<string, Map<number, KafkaTsMessage[]>>();
  for (const message of batch) {
    let partitions = byTopic.get(message.topic);
    if (partitions === undefined) byTopic.set(message.topic, (partitions = new Map()));
    const partition = message.partition!;
    const messages = partitions.get(partition);
    if (messages === undefined) partitions.set(partition, [message]);
    else messages.push(message);
  }
  const defaultTimestamp = BigInt(Date.now());
  const topicData: KafkaTsProduceRequest['topicData'] = [];
  for (const [name, partitions] of byTopic) {
    const partitionData: KafkaTsPartitionBatch[] = [];
    // kafka-ts groups by object keys: partitions in ascending order.
    for (const index of [...partitions.keys()].sort((a, b) => a - b)) {
      const messages = partitions.get(index)!;
      let baseTimestamp = messages[0]!.timestamp ?? defaultTimestamp;
      let maxTimestamp = baseTimestamp;
      for (const { timestamp = defaultTimestamp } of messages) {
        if (timestamp < baseTimestamp) baseTimestamp = timestamp;
        if (timestamp > maxTimestamp) maxTimestamp = timestamp;
      }
      const partition: KafkaTsPartitionBatch = {
        index,
        baseOffset: 0n,
        partitionLeaderEpoch: -1,
        attributes: 0,
        lastOffsetDelta: messages.length - 1,
        baseTimestamp,
        maxTimestamp,
        producerId: state.producerId,
        producerEpoch: state.producerEpoch,
        baseSequence: state.getSequence(name, index),
        records: messages,
      };
      OF_MESSAGES.set(partition, defaultTimestamp);
      partitionData.push(partition);
    }
    topicData.push({ name, topicId: metadata.getTopicIdByName(name), partitionData });
  }
  return { generation, topicData };
};

/** The most bytes `text` can take as UTF-8 (3 per UTF-16 unit), or a Buffer's length. */
const maxBytes = (v: string | Uint8Array | null | undefined): number => (v == null ? 0 : typeof v === 'string' ? v.length * 3 : v.length);

/** A bound of one message's record size, its length prefix not included: every varint at its widest, text at 3 bytes a unit. */
function maxRecordSize(m: KafkaTsMessage): number {
  // attributes, timestamp delta, offset delta, key and value lengths, header count
  let size = 1 + 10 + 5 + 5 + maxBytes(m.key) + 5 + maxBytes(m.value) + 5;
  const headers = m.headers;
  if (headers !== undefined) for (const name in headers) size += 5 + name.length * 3 + 5 + maxBytes(headers[name]);
  return size;
}

/** Each record's bound, as the last maxBatchSize measured them: writeBatch sizes the length prefixes by them. */
let recordBounds = new Int32Array(1024);

/** A bound of the batch's size; keeps each record's bound in `recordBounds` for writeBatch. */
export function maxBatchSize(partition: KafkaTsPartitionBatch): number {
  const messages = partition.records as KafkaTsMessage[];
  if (recordBounds.length < messages.length) recordBounds = new Int32Array(messages.length * 2);
  let size = HEAD + BODY_HEAD;
  for (let i = 0; i < messages.length; i++) {
    const bound = maxRecordSize(messages[i]!);
    recordBounds[i] = bound;
    size += 5 + bound;
  }
  return size;
}

/** Writes the batch at the start of `buf` (at least maxBatchSize long, measured just before); returns its length. */
function writeBatch(buf: Buffer, p: KafkaTsPartitionBatch, defaultTimestamp: bigint): number {
  const messages = p.records as KafkaTsMessage[];
  buf.writeBigInt64BE(p.baseOffset, 0);
  buf.writeInt32BE(p.partitionLeaderEpoch, 12);
  buf[16] = 2; // magic
  let at = HEAD;
  at = buf.writeInt16BE(p.attributes, at);
  at = buf.writeInt32BE(p.lastOffsetDelta, at);
  at = buf.writeBigInt64BE(p.baseTimestamp, at);
  at = buf.writeBigInt64BE(p.maxTimestamp, at);
  at = buf.writeBigInt64BE(p.producerId, at);
  at = buf.writeInt16BE(p.producerEpoch, at);
  at = buf.writeInt32BE(p.baseSequence, at);
  at = buf.writeInt32BE(messages.length, at);
  for (let i = 0; i < messages.length; i++) at = writeRecord(buf, at, messages[i]!, recordBounds[i]!, i, p.baseTimestamp, defaultTimestamp);
  buf.writeInt32BE(at - 12, 8);
  buf.writeUInt32BE(crc32c.buf(buf.subarray(HEAD, at)) >>> 0, 17);
  return at;
}

/** One message's record, length first. The length's varint width is guessed from the record's size bound and the record moved if the guess was wide. */
function writeRecord(buf: Buffer, at: number, m: KafkaTsMessage, bound: number, offsetDelta: number, baseTimestamp: bigint, defaultTimestamp: bigint): number {
  const reserved = varIntSize(bound);
  const start = at + reserved;
  let end = start;
  buf[end++] = 0; // attributes
  const timestamp = m.timestamp ?? defaultTimestamp;
  // Busline sets no timestamps: every delta is 0, written without BigInt arithmetic.
  end = timestamp === baseTimestamp ? writeVarInt(buf, end, 0) : writeVarLong(buf, end, timestamp - baseTimestamp);
  end = writeVarInt(buf, end, offsetDelta);
  end = writeBytes(buf, end, m.key ?? null);
  end = writeBytes(buf, end, m.value);
  const headers = m.headers;
  let count = 0;
  if (headers !== undefined) for (const _ in headers) count++;
  end = writeVarInt(buf, end, count);
  if (headers !== undefined) {
    for (const name in headers) {
      end = writeBytes(buf, end, name);
      end = writeBytes(buf, end, headers[name]!);
    }
  }
  const length = end - start;
  const width = varIntSize(length);
  if (width < reserved) {
    buf.copyWithin(at + width, start, end);
    end -= reserved - width;
  }
  writeVarInt(buf, at, length);
  return end;
}

/** Bytes of a zig-zag varint of `value` (a non-negative int32). */
function varIntSize(value: number): number {
  let v = value << 1;
  let n = 1;
  while ((v & 0xffffff80) !== 0) {
    v >>>= 7;
    n++;
  }
  return n;
}

function writeVarInt(buf: Buffer, at: number, value: number): number {
  let v = (value << 1) ^ (value >> 31);
  while ((v & 0xffffff80) !== 0) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  return at;
}

function writeVarLong(buf: Buffer, at: number, value: bigint): number {
  // Small deltas (all of them, in practice) take the int32 path.
  if (value >= -0x40000000n && value < 0x40000000n) return writeVarInt(buf, at, Number(value));
  let v = (value << 1n) ^ (value >> 63n);
  while (v >= 0x80n) {
    buf[at++] = Number((v & 0x7fn) | 0x80n);
    v >>= 7n;
  }
  buf[at++] = Number(v);
  return at;
}

/** A varint-length-prefixed text or Buffer (length -1 for null), as kafka-ts's writeVarIntString writes it. */
function writeBytes(buf: Buffer, at: number, v: string | Uint8Array | null): number {
  if (v === null) return writeVarInt(buf, at, -1);
  if (typeof v !== 'string') {
    at = writeVarInt(buf, at, v.length);
    buf.set(v, at);
    return at + v.length;
  }
  const n = v.length;
  // Under 64 bytes the length is one byte: ASCII text goes straight in behind it.
  if (n < 64) {
    let i = 0;
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 0x7f) break;
      buf[at + 1 + i] = c;
    }
    if (i === n) {
      buf[at] = n << 1;
      return at + 1 + n;
    }
  }
  const length = Buffer.byteLength(v);
  at = writeVarInt(buf, at, length);
  return at + buf.write(v, at, length, 'utf8');
}
