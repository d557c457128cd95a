import { AsciiTextCache } from './ascii-text-cache.js';
import { FetchedRecord, readKafkajsHeaders, setHeader, type DecoderLike } from './kafkajs-fetched-record.js';
import { foreignConsumersRunning } from './kafkajs-foreign-consumers.js';
import { kafkajsInternal, originalKafkajsModule, replaceKafkajsModule } from './kafkajs-internals.js';

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
 *
 * Header values are the other half of the cost: a Buffer per value (eight
 * per busline record), which busline only turns into text. While no kafkajs
 * consumer but busline's runs in the process (kafkajs-foreign-consumers.ts),
 * records are FetchedRecords (kafkajs-fetched-record.ts): headers as text
 * only, decoded straight from the fetched bytes with a cache of the last
 * name and value at each position; offset and timestamp as numbers; the
 * key's text when a header repeats it; key, value and kafkajs's `headers`
 * made from the bytes when read. Measured on
 * an ordered consume of binary-mode records: about a fifth less CPU per
 * message for the text headers.
 */
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
const RECORD = 'protocol/recordBatch/record/v0/decoder.js';
/** kafkajs's TimestampTypes. */
export const LOG_APPEND_TIME = 1;
export const CREATE_TIME = 0;

/** kafkajs's own record decoder, as loaded (for the record-for-record test). */
export function originalKafkajsRecordDecoder(): RecordDecoder | undefined {
  return originalKafkajsModule<RecordDecoder>(RECORD, PATCHED);
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

/** A zigzag varint (int32) at the decoder, read in place (kafkajs's readVarInt, without the call). */
function readVarInt(decoder: DecoderLike): number {
  const b = decoder.buffer;
  let pos = decoder.offset;
  let byte = b[pos++]!;
  let raw = byte & 0x7f;
  for (let shift = 7; byte >= 0x80; shift += 7) {
    byte = b[pos++]!;
    raw |= (byte & 0x7f) << shift;
  }
  decoder.offset = pos;
  return (raw >>> 1) ^ -(raw & 1);
}

/** The batch's first offset, first and max timestamp as numbers, for the batch last decoded from (one record after another). */
let lastContext: BatchContext | undefined;
let firstOffsetNumber = NaN;
let firstTimestampNumber = NaN;
/** The batch's max timestamp: a number when exact, else kafkajs's text. */
let maxTimestampValue: number | string | undefined;

/** `base + delta` as a number when exact, else as text computed in kafkajs's Long. */
function addToInt64(Long: LongClass, base: number, baseText: string | undefined, delta: number | undefined, readLong: () => LongLike): number | string {
  if (delta !== undefined && Number.isSafeInteger(base)) {
    const sum = base + delta;
    if (Number.isSafeInteger(sum)) return sum;
  }
  return Long.fromValue(String(baseText))
    .add(delta ?? readLong())
    .toString();
}

/** Header names and values by their position in the record: records of one producer repeat both. */
const headerNames = new AsciiTextCache(32);
const headerValues = new AsciiTextCache(32);
const readHeaderName = (index: number, bytes: Buffer, start: number, end: number): string => headerNames.text(index, bytes, start, end);

/** The key's text, when readHeaderText found a header value spelled by the key's bytes (else undefined). */
let sharedKeyText: string | undefined;

/**
 * The headers at the decoder as text: the last value of a repeated name, none
 * for a null value (what busline reads of kafkajs's headers). A value spelled
 * by the same bytes as the record's key is the key's text, decoded once for
 * both and left in `sharedKeyText`: busline's subject header repeats the key,
 * and varies from record to record as the key does (equal bytes are equal
 * text, ASCII or not). A null key (length -1) matches no value: null values
 * are skipped first.
 */
function readHeaderText(decoder: DecoderLike, keyAt: number, keyLength: number): Record<string, string> {
  const headers: Record<string, string> = {};
  const b = decoder.buffer;
  let keyText: string | undefined;
  const count = readVarInt(decoder);
  for (let i = 0; i < count; i++) {
    const nameLength = readVarInt(decoder);
    let name = 'null';
    if (nameLength >= 0) {
      const start = decoder.offset;
      decoder.offset += nameLength;
      name = headerNames.text(i, b, start, start + nameLength);
    }
    const length = readVarInt(decoder);
    if (length < 0) {
      if (Object.hasOwn(headers, name)) delete headers[name];
      continue;
    }
    const start = decoder.offset;
    decoder.offset += length;
    let value: string;
    if (length === keyLength && sameBytes(b, start, keyAt, length)) value = keyText ??= b.toString('utf8', keyAt, keyAt + keyLength);
    else value = headerValues.text(i, b, start, start + length);
    if (name === '__proto__') setHeader(headers, name, value);
    else headers[name] = value;
  }
  sharedKeyText = keyText;
  return headers;
}

/** Whether `b[a, a + length)` and `b[c, c + length)` hold the same bytes. */
function sameBytes(b: Buffer, a: number, c: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (b[a + i] !== b[c + i]) return false;
  return true;
}

/** The headers of a record the adapter's decoder kept as text; undefined for a record with kafkajs's Buffers. */
export function headerTextOf(record: object): Record<string, string> | undefined {
  return record instanceof FetchedRecord ? record.headerText : undefined;
}

export function applyKafkajsRecordDecoder(): boolean {
  const Long = kafkajsInternal<LongClass>('utils/long.js');
  if (Long === undefined) return false;
  return replaceKafkajsModule<RecordDecoder>(RECORD, 'protocol/recordBatch/v0/decoder.js', PATCHED, () => {
    const decode: RecordDecoder = (decoder, batchContext = {}) => {
      const { firstOffset, firstTimestamp, magicByte, isControlBatch = false, timestampType, maxTimestamp } = batchContext;
      if (batchContext !== lastContext) {
        lastContext = batchContext;
        firstOffsetNumber = Number(firstOffset);
        firstTimestampNumber = Number(firstTimestamp);
        maxTimestampValue = maxTimestamp !== undefined && Number.isSafeInteger(Number(maxTimestamp)) ? Number(maxTimestamp) : maxTimestamp;
      }
      const attributes = decoder.readInt8();
      let timestamp: number | string;
      if (timestampType === LOG_APPEND_TIME && maxTimestamp) {
        // The delta is still read (and unused), as kafkajs does.
        if (readSmallVarLong(decoder) === undefined) decoder.readVarLong();
        timestamp = maxTimestampValue!;
      } else {
        const delta = readSmallVarLong(decoder);
        timestamp = addToInt64(Long, firstTimestampNumber, firstTimestamp, delta, () => decoder.readVarLong() as LongLike);
      }
      const offset = addToInt64(Long, firstOffsetNumber, firstOffset, readVarInt(decoder), () => {
        throw new Error('unreachable: an offset delta is an int32');
      });
      if (!foreignConsumersRunning()) {
        const keyLength = readVarInt(decoder);
        const keyAt = decoder.offset;
        if (keyLength > 0) decoder.offset += keyLength;
        const valueLength = readVarInt(decoder);
        const valueAt = decoder.offset;
        if (valueLength > 0) decoder.offset += valueLength;
        const headersAt = decoder.offset;
        const text = readHeaderText(decoder, keyAt, keyLength);
        return new FetchedRecord(decoder.buffer, keyAt, keyLength, sharedKeyText, valueAt, valueLength, headersAt, offset, timestamp, text, magicByte, attributes, isControlBatch, batchContext);
      }
      const key = decoder.readVarIntBytes();
      const value = decoder.readVarIntBytes();
      const headers = readKafkajsHeaders(decoder, readHeaderName);
      return { magicByte, attributes, timestamp: String(timestamp), offset: String(offset), key, value, headers, isControlRecord: isControlBatch, batchContext };
    };
    return decode;
  });
}
