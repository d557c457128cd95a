import { createRequire } from 'node:module';
import { AsciiTextCache } from './ascii-text-cache.js';
import { kafkajsInternal, replaceKafkajsModule } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 decodes each fetched record's headers by spreading the
 * object built so far into a new one per header (eight objects for
 * busline's eight CloudEvents headers), and computes each record's offset
 * and timestamp with its Long class, parsing the batch's first offset and
 * timestamp from decimal text every time. Together with the garbage that
 * leaves, that was about 40 % of the client CPU of an ordered consume.
 *
 * This replaces kafkajs's record decoder (`protocol/recordBatch/record/v0/
 * decoder.js`) with one that gives the same record: headers gathered into
 * one object (a repeated name still becomes an array of its values, in
 * order), offset and timestamp added as numbers when both parts are exact
 * in a double (always, for offsets and millisecond timestamps of this
 * era), with kafkajs's Long arithmetic otherwise. The batch decoder
 * requires the record decoder when it loads (on the first fetch); the
 * replacement is put into the require cache before that, when the adapter
 * loads. If kafkajs moved the module (another version) or a consumer of
 * this kafkajs already fetched, nothing is changed.
 */
interface DecoderLike {
  buffer: Buffer;
  offset: number;
  readInt8(): number;
  readVarInt(): number;
  readVarLong(): { toString(): string };
  readVarIntBytes(): Buffer | null;
}
interface BatchContext {
  firstOffset?: string;
  firstTimestamp?: string;
  magicByte?: number;
  isControlBatch?: boolean;
  timestampType?: number;
  maxTimestamp?: string;
}
interface LongLike {
  add(other: unknown): LongLike;
  toString(): string;
}
interface LongClass {
  fromValue(value: unknown): LongLike;
}
type RecordDecoder = (decoder: DecoderLike, batchContext?: BatchContext) => unknown;

const PATCHED = Symbol.for('busline.kafkajs.recordDecoder');
const RECORD = 'kafkajs/src/protocol/recordBatch/record/v0/decoder.js';
/** kafkajs's TimestampTypes.LOG_APPEND_TIME. */
const LOG_APPEND_TIME = 1;

/** kafkajs's own record decoder, as loaded (for the record-for-record test). */
export function originalKafkajsRecordDecoder(): RecordDecoder {
  const require = createRequire(import.meta.url);
  const current = require(RECORD) as RecordDecoder & { [PATCHED]?: RecordDecoder };
  return current[PATCHED] ?? current;
}

/**
 * A zigzag varlong as a number when it fits in 7 bytes (49 bits: exact in a
 * double), else undefined with the decoder where it was.
 */
function readSmallVarLong(decoder: DecoderLike): number | undefined {
  const buffer = decoder.buffer;
  const start = decoder.offset;
  let raw = 0;
  let scale = 1;
  for (let i = start; i < start + 7; i++) {
    const byte = buffer[i]!;
    raw += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      decoder.offset = i + 1;
      return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
    }
    scale *= 128;
  }
  return undefined;
}

/** `base` (int64 as text) plus `delta`, as text: in doubles when exact, else in kafkajs's Long. */
function addToInt64Text(Long: LongClass, base: string, delta: number | undefined, readLong: () => LongLike): string {
  const b = Number(base);
  if (delta !== undefined && Number.isSafeInteger(b)) {
    const sum = b + delta;
    if (Number.isSafeInteger(sum)) return String(sum);
  }
  return Long.fromValue(base)
    .add(delta ?? readLong())
    .toString();
}

/** Header names by position: records of one producer repeat the same names in the same order. */
const headerNames = new AsciiTextCache<number>(32);

function readHeaderName(decoder: DecoderLike, index: number): string {
  const length = decoder.readVarInt();
  // A null name (not valid Kafka, but readable) becomes "null", as in kafkajs.
  if (length < 0) return 'null';
  const start = decoder.offset;
  decoder.offset += length;
  return headerNames.text(index, decoder.buffer, start, start + length);
}

export function applyKafkajsRecordDecoder(): boolean {
  const Long = kafkajsInternal<LongClass>('utils/long.js');
  if (Long === undefined) return false;
  return replaceKafkajsModule<RecordDecoder>('protocol/recordBatch/record/v0/decoder.js', 'protocol/recordBatch/v0/decoder.js', PATCHED, () => {
    const decode: RecordDecoder = (decoder, batchContext = {}) => {
      const { firstOffset, firstTimestamp, magicByte, isControlBatch = false, timestampType, maxTimestamp } = batchContext;
      const attributes = decoder.readInt8();
      let timestamp: string;
      if (timestampType === LOG_APPEND_TIME && maxTimestamp) {
        // The delta is still read (and unused), as kafkajs does.
        if (readSmallVarLong(decoder) === undefined) decoder.readVarLong();
        timestamp = maxTimestamp;
      } else {
        const delta = readSmallVarLong(decoder);
        timestamp = addToInt64Text(Long, String(firstTimestamp), delta, () => decoder.readVarLong() as LongLike);
      }
      const offsetDelta = decoder.readVarInt();
      const offset = addToInt64Text(Long, String(firstOffset), offsetDelta, () => {
        throw new Error('unreachable: an offset delta is an int32');
      });
      const key = decoder.readVarIntBytes();
      const value = decoder.readVarIntBytes();
      const headers: Record<string, Buffer | null | (Buffer | null)[]> = {};
      const count = decoder.readVarInt();
      for (let i = 0; i < count; i++) {
        const name = readHeaderName(decoder, i);
        const v = decoder.readVarIntBytes();
        const before = Object.hasOwn(headers, name) ? headers[name] : undefined;
        const next = before === undefined ? v : Array.isArray(before) ? before.concat([v]) : [before, v];
        if (name === '__proto__') Object.defineProperty(headers, name, { value: next, enumerable: true, writable: true, configurable: true });
        else headers[name] = next;
      }
      return { magicByte, attributes, timestamp, offset, key, value, headers, isControlRecord: isControlBatch, batchContext };
    };
    return decode;
  });
}
