import { createRequire } from 'node:module';
import type { DecoderLike } from './kafkajs-fetched-record.js';
import { kafkajsInternal, originalKafkajsModule, replaceKafkajsModule } from './kafkajs-internals.js';
import { CREATE_TIME, LOG_APPEND_TIME } from './kafkajs-record-decoder.js';

/**
 * kafkajs 2.2.4's record batch decoder (`protocol/recordBatch/v0/
 * decoder.js`) copies nothing, but gives each record a Buffer view and a
 * Decoder of its own before decoding it, and a record keeps the Buffer it was
 * decoded from: two objects per record, one held as long as the record
 * waits in its partition's backlog. This replacement is the same decoder
 * with each record decoded in place, in the batch's own bytes (the record
 * decoder, kafkajs-record-decoder.ts, reads every field of the record; the
 * record's length prefix still decides where the next one starts). The
 * batch it returns is kafkajs's, field for field. Applied when the adapter
 * loads, before the fetch decoder that requires it (first loaded by a
 * consumer's first fetch); skipped, changing nothing, if kafkajs moved the
 * module or already loaded that fetch decoder.
 */
interface BatchDecoder extends DecoderLike {
  readInt16(): number;
  readInt32(): number;
  readInt64(): { toString(): string };
  readAll(): Buffer;
  slice(size: number): BatchDecoder;
  forward(size: number): void;
  readArray<T>(read: (decoder: BatchDecoder) => T): T[];
}
type DecoderClass = new (buffer: Buffer) => BatchDecoder;
type RecordDecoder = (decoder: DecoderLike, context: object) => unknown;
interface Codec {
  decompress(buffer: Buffer): Promise<Buffer>;
}

const PATCHED = Symbol.for('busline.kafkajs.recordBatchDecoder');
const BATCH = 'protocol/recordBatch/v0/decoder.js';

const TIMESTAMP_TYPE_FLAG_MASK = 0x8;
const TRANSACTIONAL_FLAG_MASK = 0x10;
const CONTROL_FLAG_MASK = 0x20;

/** kafkajs's own record batch decoder, as loaded (for the batch-for-batch test). */
export function originalKafkajsRecordBatchDecoder(): ((decoder: object) => Promise<unknown>) | undefined {
  return originalKafkajsModule<(decoder: object) => Promise<unknown>>(BATCH, PATCHED);
}

export function applyKafkajsRecordBatchDecoder(): boolean {
  const Decoder = kafkajsInternal<DecoderClass>('protocol/decoder.js');
  const errors = kafkajsInternal<{ KafkaJSPartialMessageError: new (message: string) => Error }>('errors.js');
  const compression = kafkajsInternal<{ lookupCodecByAttributes(attributes: number): Codec | null }>('protocol/message/compression/index.js');
  if (Decoder === undefined || errors === undefined || compression === undefined) return false;
  const require = createRequire(import.meta.url);
  // Required at each call, as kafkajs's decoder does at load: the record decoder in place then (busline's, normally).
  const recordDecoder = () => require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as RecordDecoder;

  /**
   * One record at the decoder, in place; the decoder ends where the record's length prefix says it does
   * (bytes past its fields are skipped, as kafkajs's per-record Buffer ignored them).
   */
  const decodeRecord = (decode: RecordDecoder, decoder: BatchDecoder, context: object): unknown => {
    const length = decoder.readVarInt();
    const end = decoder.offset + length;
    const record = decode(decoder, context);
    if (decoder.offset > end) throw new Error(`malformed Kafka record: its length says ${length} bytes, its fields take ${length + decoder.offset - end}`);
    decoder.offset = end;
    return record;
  };

  return replaceKafkajsModule<(decoder: BatchDecoder) => Promise<unknown>>(BATCH, 'protocol/requests/fetch/v4/decodeMessages.js', PATCHED, () => async (fetchDecoder) => {
    const firstOffset = fetchDecoder.readInt64().toString();
    const length = fetchDecoder.readInt32();
    const decoder = fetchDecoder.slice(length);
    fetchDecoder.forward(length);
    const remainingBytes = Buffer.byteLength(decoder.buffer);
    if (remainingBytes < length) {
      throw new errors.KafkaJSPartialMessageError(`Tried to decode a partial record batch: remainingBytes(${remainingBytes}) < recordBatchLength(${length})`);
    }
    const partitionLeaderEpoch = decoder.readInt32();
    const magicByte = decoder.readInt8();
    decoder.readInt32(); // CRC: not checked, as in kafkajs
    const attributes = decoder.readInt16();
    const lastOffsetDelta = decoder.readInt32();
    const firstTimestamp = decoder.readInt64().toString();
    const maxTimestamp = decoder.readInt64().toString();
    const producerId = decoder.readInt64().toString();
    const producerEpoch = decoder.readInt16();
    const firstSequence = decoder.readInt32();
    const recordContext = {
      firstOffset,
      firstTimestamp,
      partitionLeaderEpoch,
      inTransaction: (attributes & TRANSACTIONAL_FLAG_MASK) > 0,
      isControlBatch: (attributes & CONTROL_FLAG_MASK) > 0,
      lastOffsetDelta,
      producerId,
      producerEpoch,
      firstSequence,
      maxTimestamp,
      timestampType: (attributes & TIMESTAMP_TYPE_FLAG_MASK) > 0 ? LOG_APPEND_TIME : CREATE_TIME,
    };
    const context = { ...recordContext, magicByte };
    const decode = recordDecoder();
    const codec = compression.lookupCodecByAttributes(attributes);
    let records: unknown[];
    if (!codec) {
      records = decoder.readArray((d) => decodeRecord(decode, d, context));
    } else {
      const count = decoder.readInt32();
      records = [];
      if (count > 0) {
        const decompressed = new Decoder(await codec.decompress(decoder.readAll()));
        records = new Array<unknown>(count);
        for (let i = 0; i < count; i++) records[i] = decodeRecord(decode, decompressed, context);
      }
    }
    return { ...recordContext, records };
  });
}
