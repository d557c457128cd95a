import { kafkajsInternal, originalKafkajsModule, replaceKafkajsModule } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 encodes each record header with an Encoder of its own, and
 * every Encoder starts with a zero-filled 512-byte buffer: a record with
 * busline's eight CloudEvents headers allocates and zeroes nine of them, then
 * copies eight into the record. That is most of what made headers triple the
 * cost of a record (raw kafkajs: 55.8k msg/s without headers, 18.4k with 8).
 *
 * This replaces kafkajs's record encoder (`protocol/recordBatch/record/v0`)
 * with one that writes the headers straight into the record's own Encoder,
 * sized for the record: the same bytes, one buffer. kafkajs requires that
 * module lazily, from its produce request (v3), on the first send; the
 * replacement is put into the require cache before that, when the adapter
 * loads. If kafkajs moved the module (another version) or a producer of this
 * kafkajs already sent, nothing is changed.
 */
interface EncoderLike {
  writeVarInt(value: number): EncoderLike;
  writeInt8(value: number): EncoderLike;
  writeVarLong(value: number): EncoderLike;
  writeVarIntBytes(value: unknown): EncoderLike;
  writeVarIntString(value: string): EncoderLike;
}
interface EncoderClass {
  new (initialSize?: number): EncoderLike;
  sizeOfVarInt(value: number): number;
  sizeOfVarLong(value: number): number;
  sizeOfVarIntBytes(value: unknown): number;
}
type HeaderValue = string | Buffer | null;
interface RecordInput {
  offsetDelta?: number;
  timestampDelta?: number;
  key: unknown;
  value: unknown;
  headers?: Record<string, HeaderValue | HeaderValue[]>;
}

const PATCHED = Symbol.for('busline.kafkajs.recordEncoder');
const RECORD = 'protocol/recordBatch/record/v0/index.js';

/** kafkajs's own record encoder, as loaded (for the byte-for-byte test). */
export function originalKafkajsRecordEncoder(): ((record: RecordInput) => EncoderLike) | undefined {
  return originalKafkajsModule<(record: RecordInput) => EncoderLike>(RECORD, PATCHED);
}

export function applyKafkajsRecordEncoder(): boolean {
  const Encoder = kafkajsInternal<EncoderClass>('protocol/encoder.js');
  if (Encoder === undefined) return false;
  return replaceKafkajsModule<(record: RecordInput) => EncoderLike>(RECORD, 'protocol/requests/produce/v3/request.js', PATCHED, () => {
    const encode = ({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordInput): EncoderLike => {
      const names: string[] = [];
      const values: HeaderValue[] = [];
      for (const name of Object.keys(headers)) {
        const v = headers[name]!;
        if (Array.isArray(v)) for (const one of v) (names.push(name), values.push(one));
        else (names.push(name), values.push(v));
      }
      let headersSize = Encoder.sizeOfVarInt(names.length);
      for (let i = 0; i < names.length; i++) {
        const keySize = Buffer.byteLength(names[i]!);
        headersSize += Encoder.sizeOfVarInt(keySize) + keySize + Encoder.sizeOfVarIntBytes(values[i]);
      }
      const sizeOfBody =
        1 + Encoder.sizeOfVarLong(timestampDelta) + Encoder.sizeOfVarInt(offsetDelta) + Encoder.sizeOfVarIntBytes(key) + Encoder.sizeOfVarIntBytes(value) + headersSize;
      const encoder = new Encoder(sizeOfBody + 5)
        .writeVarInt(sizeOfBody)
        .writeInt8(0)
        .writeVarLong(timestampDelta)
        .writeVarInt(offsetDelta)
        .writeVarIntBytes(key)
        .writeVarIntBytes(value)
        .writeVarInt(names.length);
      for (let i = 0; i < names.length; i++) encoder.writeVarIntString(names[i]!).writeVarIntBytes(values[i]);
      return encoder;
    };
    return encode;
  });
}
