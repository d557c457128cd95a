import { createRequire } from 'node:module';
import { AsciiTextCache } from './ascii-text-cache.js';
import { foreignConsumersRunning } from './kafkajs-foreign-consumers.js';
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
 *
 * Header values are the other half of the cost: a Buffer per value (eight
 * per busline record), which busline only turns into text. While no kafkajs
 * consumer but busline's runs in the process (kafkajs-foreign-consumers.ts),
 * records carry their headers as text only (`headerTextOf`), decoded
 * straight from the fetched bytes with a cache of the last value per name;
 * `headers` is then computed from the record's bytes when read, the same
 * object kafkajs makes. Measured on an ordered consume of binary-mode
 * records: about a fifth less CPU per message.
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

const HEADER_TEXT = Symbol('busline.headerText');
const RECORD_BYTES = Symbol('busline.recordBytes');
const HEADERS_AT = Symbol('busline.headersAt');
const HEADER_BUFFERS = Symbol('busline.headerBuffers');

type HeaderBuffers = Record<string, Buffer | null | (Buffer | null)[]>;
type DecoderClass = new (buffer: Buffer) => DecoderLike;

/**
 * A record decoded for busline's consumers: headers as text (`headerTextOf`);
 * `headers`, as kafkajs gives them, decoded from the record's bytes when
 * first read.
 */
class TextHeadersRecord {
  readonly [HEADER_TEXT]: Record<string, string>;
  private readonly [RECORD_BYTES]: Buffer;
  private readonly [HEADERS_AT]: number;
  private [HEADER_BUFFERS]: HeaderBuffers | undefined = undefined;

  constructor(
    readonly magicByte: number | undefined,
    readonly attributes: number,
    readonly timestamp: string,
    readonly offset: string,
    readonly key: Buffer | null,
    readonly value: Buffer | null,
    readonly isControlRecord: boolean,
    readonly batchContext: BatchContext,
    text: Record<string, string>,
    bytes: Buffer,
    headersAt: number,
  ) {
    this[HEADER_TEXT] = text;
    this[RECORD_BYTES] = bytes;
    this[HEADERS_AT] = headersAt;
  }

  get headers(): HeaderBuffers {
    return (this[HEADER_BUFFERS] ??= readHeaderBuffers(this[RECORD_BYTES], this[HEADERS_AT]));
  }

  set headers(headers: HeaderBuffers) {
    this[HEADER_BUFFERS] = headers;
  }
}

let KafkajsDecoder: DecoderClass | undefined;

/** The headers of a record whose header count starts at `at` of `bytes`, as kafkajs decodes them. */
function readHeaderBuffers(bytes: Buffer, at: number): HeaderBuffers {
  KafkajsDecoder ??= kafkajsInternal<DecoderClass>('protocol/decoder.js')!;
  const decoder = new KafkajsDecoder(bytes);
  decoder.offset = at;
  return readHeaders(decoder, (d) => d.readVarIntBytes());
}

/**
 * The headers at the decoder, each value read by `readValue`: one object, a
 * repeated name's values gathered into an array, in order.
 */
function readHeaders<V>(decoder: DecoderLike, readValue: (decoder: DecoderLike) => V): Record<string, V | V[]> {
  const headers: Record<string, V | V[]> = {};
  const count = decoder.readVarInt();
  for (let i = 0; i < count; i++) {
    const name = readHeaderName(decoder, i);
    const v = readValue(decoder);
    const before = Object.hasOwn(headers, name) ? headers[name] : undefined;
    const next = before === undefined ? v : Array.isArray(before) ? before.concat([v]) : [before, v];
    setHeader(headers, name, next);
  }
  return headers;
}

/** `headers[name] = value`, also for the name `__proto__` (an own property, as kafkajs's spread makes it). */
function setHeader<V>(headers: Record<string, V>, name: string, value: V): void {
  if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
  else headers[name] = value;
}

/** Header values by name: most repeat from record to record (type, source, content type). */
const headerValues = new AsciiTextCache<string>();

/**
 * The headers at the decoder as text: the last value of a repeated name, none
 * for a null value (what busline reads of kafkajs's headers).
 */
function readHeaderText(decoder: DecoderLike): Record<string, string> {
  const headers: Record<string, string> = {};
  const count = decoder.readVarInt();
  for (let i = 0; i < count; i++) {
    const name = readHeaderName(decoder, i);
    const length = decoder.readVarInt();
    if (length < 0) {
      if (Object.hasOwn(headers, name)) delete headers[name];
      continue;
    }
    const start = decoder.offset;
    decoder.offset += length;
    setHeader(headers, name, headerValues.text(name, decoder.buffer, start, start + length));
  }
  return headers;
}

/**
 * The headers of a fetched record as text, when the adapter's decoder gave
 * them so (no foreign kafkajs consumer ran); undefined otherwise (read
 * `headers`).
 */
export function headerTextOf(record: object): Record<string, string> | undefined {
  return record instanceof TextHeadersRecord ? record[HEADER_TEXT] : undefined;
}

/** A kafkajs header value (a Buffer, or several for a repeated name: the last wins) as text. */
function headerText(name: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.length ? headerText(name, value[value.length - 1]) : undefined;
  return Buffer.isBuffer(value) ? headerValues.text(name, value) : String(value);
}

/**
 * A fetched record's headers as text, whichever way it was decoded: the text
 * the decoder kept, or its Buffers (a foreign consumer ran) turned into text
 * by the same rule (the last value of a repeated name, none for null).
 */
export function recordHeaderText(record: { headers?: Record<string, unknown> }): Record<string, string> {
  const kept = headerTextOf(record);
  if (kept !== undefined) return kept;
  const headers: Record<string, string> = {};
  const raw = record.headers;
  for (const name in raw) {
    const text = headerText(name, raw[name]);
    if (text !== undefined) headers[name] = text;
  }
  return headers;
}

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
      if (!foreignConsumersRunning()) {
        const headersAt = decoder.offset;
        const text = readHeaderText(decoder);
        return new TextHeadersRecord(magicByte, attributes, timestamp, offset, key, value, isControlBatch, batchContext, text, decoder.buffer, headersAt);
      }
      const headers = readHeaders(decoder, (d) => d.readVarIntBytes());
      return { magicByte, attributes, timestamp, offset, key, value, headers, isControlRecord: isControlBatch, batchContext };
    };
    return decode;
  });
}
