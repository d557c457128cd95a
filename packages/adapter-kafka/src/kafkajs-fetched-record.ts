import { kafkajsInternal } from './kafkajs-internals.js';

/**
 * FetchedRecord: a fetched record as the adapter's record decoder makes it
 * for busline's consumers (kafkajs-record-decoder.ts), and the accessors the
 * adapter reads every record through.
 *
 * A fetched record waits in its partition's backlog, often through several
 * garbage collections, so what it holds is copied each time. kafkajs makes
 * nine objects per record (key and value Buffers, offset and timestamp text,
 * a headers object with a Buffer per header); this one holds its header
 * values as text (what busline reads), its offset and timestamp as numbers,
 * where its key and value lie in the fetched bytes, and its key's text when a
 * header repeated it (decoded once for both). kafkajs's fields
 * (`key`, `value`, `offset`, `timestamp`, `headers`) are computed when read,
 * equal to what kafkajs would have given, so kafkajs's own code (its Batch
 * reads `offset`) and any reader of `eachBatch` records see a kafkajs
 * record. The adapter reads through `recordOffset`, `recordKeyText`,
 * `recordValue`, `recordSize`, `recordTimestamp` and `recordHeaderText`,
 * which take any kafkajs record and make nothing they do not return.
 */
export type HeaderBuffers = Record<string, Buffer | null | (Buffer | null)[]>;

/** What a record decoder reads from (kafkajs's Decoder). */
export interface DecoderLike {
  buffer: Buffer;
  offset: number;
  readInt8(): number;
  readVarInt(): number;
  readVarLong(): { toString(): string };
  readVarIntBytes(): Buffer | null;
}

type DecoderClass = new (buffer: Buffer) => DecoderLike;
let KafkajsDecoder: DecoderClass | undefined;

export class FetchedRecord {
  private decodedHeaders: HeaderBuffers | undefined = undefined;

  constructor(
    /** The bytes the record lies in (a view of the fetch response). */
    private readonly bytes: Buffer,
    private readonly keyAt: number,
    /** -1 for a null key. */
    readonly keyLength: number,
    /** The key's text when a header value repeated it (decoded with the headers); else undefined. */
    private readonly sharedKeyText: string | undefined,
    private readonly valueAt: number,
    /** -1 for a null value. */
    readonly valueLength: number,
    /** Where the record's header count starts in `bytes`. */
    private readonly headersAt: number,
    /** A number when exact in a double (every offset of this era), else kafkajs's decimal text. */
    readonly offsetValue: number | string,
    readonly timestampValue: number | string,
    /** The headers as text: the last value of a repeated name, none for a null value. */
    readonly headerText: Record<string, string>,
    readonly magicByte: number | undefined,
    readonly attributes: number,
    readonly isControlRecord: boolean,
    readonly batchContext: object,
  ) {}

  /** The key as text, without a Buffer in between; undefined for a null key. */
  keyText(): string | undefined {
    if (this.keyLength < 0) return undefined;
    return this.sharedKeyText ?? this.bytes.toString('utf8', this.keyAt, this.keyAt + this.keyLength);
  }

  get key(): Buffer | null {
    return this.keyLength < 0 ? null : this.bytes.subarray(this.keyAt, this.keyAt + this.keyLength);
  }

  get value(): Buffer | null {
    return this.valueLength < 0 ? null : this.bytes.subarray(this.valueAt, this.valueAt + this.valueLength);
  }

  get offset(): string {
    return String(this.offsetValue);
  }

  get timestamp(): string {
    return String(this.timestampValue);
  }

  /** As kafkajs decodes them: a Buffer per value, a repeated name's values in an array. */
  get headers(): HeaderBuffers {
    if (this.decodedHeaders === undefined) {
      KafkajsDecoder ??= kafkajsInternal<DecoderClass>('protocol/decoder.js')!;
      const decoder = new KafkajsDecoder(this.bytes);
      decoder.offset = this.headersAt;
      this.decodedHeaders = readKafkajsHeaders(decoder);
    }
    return this.decodedHeaders;
  }

  set headers(headers: HeaderBuffers) {
    this.decodedHeaders = headers;
  }
}

/** `bytes[start, end)` as text: the name of header number `index`. */
export type HeaderNameReader = (index: number, bytes: Buffer, start: number, end: number) => string;
const decodeName: HeaderNameReader = (_, bytes, start, end) => bytes.toString('utf8', start, end);

/**
 * The headers at the decoder as kafkajs decodes them: one object, a repeated
 * name's values gathered into an array, in order; a null name is "null".
 */
export function readKafkajsHeaders(decoder: DecoderLike, readName = decodeName): HeaderBuffers {
  const headers: HeaderBuffers = {};
  const count = decoder.readVarInt();
  for (let i = 0; i < count; i++) {
    const nameLength = decoder.readVarInt();
    let name = 'null';
    if (nameLength >= 0) {
      name = readName(i, decoder.buffer, decoder.offset, decoder.offset + nameLength);
      decoder.offset += nameLength;
    }
    const v = decoder.readVarIntBytes();
    const before = Object.hasOwn(headers, name) ? headers[name] : undefined;
    setHeader(headers, name, before === undefined ? v : Array.isArray(before) ? before.concat([v]) : [before, v]);
  }
  return headers;
}

/** `headers[name] = value`, also for the name `__proto__` (an own property, as kafkajs's spread makes it). */
export function setHeader<V>(headers: Record<string, V>, name: string, value: V): void {
  if (name === '__proto__') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
  else headers[name] = value;
}

interface KafkajsRecord {
  offset: string;
  timestamp?: string;
  key?: Buffer | null;
  value?: Buffer | null;
  headers?: Record<string, unknown>;
}

const EMPTY = new Uint8Array(0);

/** The offset of a record this adapter decoded, when it is an exact number (below 2^53); otherwise undefined. */
export function exactOffset(record: object): number | undefined {
  return record instanceof FetchedRecord && typeof record.offsetValue === 'number' ? record.offsetValue : undefined;
}

/** The record's offset as a number. */
export function recordOffset(record: KafkajsRecord): number {
  return exactOffset(record) ?? Number(record.offset);
}

/** The record's key as text; undefined for a null key. */
export function recordKeyText(record: KafkajsRecord): string | undefined {
  if (record instanceof FetchedRecord) return record.keyText();
  return record.key === null || record.key === undefined ? undefined : record.key.toString();
}

/** The record's value (a view of the fetched bytes); empty for a null value. */
export function recordValue(record: KafkajsRecord): Uint8Array {
  return record.value ?? EMPTY;
}

/** Estimated memory of a fetched record: key, value and a fixed allowance for headers and bookkeeping. */
export function recordSize(record: KafkajsRecord): number {
  if (record instanceof FetchedRecord) return Math.max(0, record.keyLength) + Math.max(0, record.valueLength) + 128;
  return (record.value?.length ?? 0) + (record.key?.length ?? 0) + 128;
}

/** The record timestamp in ms; undefined when it is none (-1) or not a number. */
export function recordTimestamp(record: KafkajsRecord): number | undefined {
  const ms = record instanceof FetchedRecord ? Number(record.timestampValue) : Number(record.timestamp);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/**
 * The record's headers as text, whichever way it was decoded: the text a
 * FetchedRecord keeps, or kafkajs's Buffers (a foreign consumer ran) turned
 * into text by the same rule (the last value of a repeated name, none for
 * null).
 */
export function recordHeaderText(record: KafkajsRecord): Record<string, string> {
  if (record instanceof FetchedRecord) return record.headerText;
  const headers: Record<string, string> = {};
  const raw = record.headers;
  for (const name in raw) {
    let value = raw[name];
    if (Array.isArray(value)) value = value[value.length - 1];
    if (value === undefined || value === null) continue;
    setHeader(headers, name, Buffer.isBuffer(value) ? value.toString() : String(value));
  }
  return headers;
}
