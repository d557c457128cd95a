import { headers as natsHeaders, type Msg, type MsgHdrs } from '@nats-io/nats-core';

/**
 * Header encoding on the hot paths (decoding: header-reader.ts). The NATS client's own
 * `MsgHdrs` keeps a Map of arrays and matches keys by scanning them, which is
 * a noticeable share of the per-message cost at 100k msg/s; busline headers
 * are a flat string map, so they are written and read directly in the NATS
 * header format (`NATS/1.0\r\nName: value\r\n...\r\n\r\n`).
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Whether the fast paths may use the NATS client's internals (see the README,
 * "Client internals"). Always true in use; tests switch it off before making a
 * bus to run every fallback (the public client API) against a real server. Not
 * exported from the package: there is no user-facing way to change it.
 */
export let clientInternals = true;

/** Test seam: false makes every fast path take its public-API fallback (for buses created afterwards). */
export function setClientInternals(enabled: boolean): void {
  clientInternals = enabled;
}

/** The envelope's subject (the aggregate id): the ordering key of a busline message. */
export const SUBJECT_HEADER = 'ce-subject';

/**
 * Carries `WireMessage.key` when the envelope's subject does not already
 * (a `publishWire` with a key of its own): NATS has no key field. Taken off
 * the headers again on delivery, so it never shows as a user header.
 */
export const KEY_HEADER = 'busline-key';

/**
 * The headers to send for a message: its own, plus KEY_HEADER only when the
 * key is not the subject already, minus a `Nats-Msg-Id` it carries (delivered
 * headers include the stored one; a copy such as a dead letter would otherwise
 * be deduped as the original, since the server reads the first one). A copy
 * is made only in those cases, never on the normal path.
 */
export function outgoingHeaders(key: string | undefined, headers: Record<string, string>): Record<string, string> {
  let out = headers;
  if (key !== undefined && key !== headers[SUBJECT_HEADER] && key !== headers[KEY_HEADER]) out = { ...headers, [KEY_HEADER]: key };
  if (out[MSG_ID_HEADER] !== undefined) {
    if (out === headers) out = { ...headers };
    delete out[MSG_ID_HEADER];
  }
  return out;
}

/** A delivered message's key: KEY_HEADER (removed from `headers`) if present, else the envelope's subject. */
export function takeKey(headers: Record<string, string>): string | undefined {
  const key = headers[KEY_HEADER];
  if (key === undefined) return headers[SUBJECT_HEADER];
  delete headers[KEY_HEADER];
  return key;
}

/** The header that makes JetStream drop a message it stored within the duplicate window. */
export const MSG_ID_HEADER = 'Nats-Msg-Id';

/** What `NatsConnection.publish` needs of headers: their encoded bytes. */
class EncodedHeaders {
  constructor(private readonly bytes: Uint8Array) {}
  encode(): Uint8Array {
    return this.bytes;
  }
}

const HEADER_NAME = /^[!-9;-~]+$/;
const BAD_VALUE = /[\r\n]/;

/** Header names already checked (they repeat: ce-id, ce-type, ...), so the check is a Set lookup. */
const checkedNames = new Set<string>();

function validName(name: string): boolean {
  if (checkedNames.has(name)) return true;
  if (!HEADER_NAME.test(name)) return false;
  if (checkedNames.size < 4096) checkedNames.add(name);
  return true;
}

function validValue(value: unknown): value is string {
  return typeof value === 'string' && value.indexOf('\r') < 0 && value.indexOf('\n') < 0;
}

/** UTF-8 bytes of a header value, or -1 when it cannot be carried (CR or LF). A JS scan: most values are short ASCII. */
function valueBytes(value: unknown): number {
  if (typeof value !== 'string') return -1;
  const n = value.length;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 13 || c === 10) return -1;
    if (c > 127) return validValue(value) ? Buffer.byteLength(value) : -1;
  }
  return n;
}

/** Writes an ASCII string byte by byte (cheaper than a native call for short strings); -1 at the first non-ASCII character. */
function putAscii(buf: Buffer, off: number, text: string): number {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) return -1;
    buf[off + i] = c;
  }
  return off + n;
}

/** Decimal digits of a non-negative integer. */
export function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes a non-negative integer in decimal; returns the offset after it. */
export function putInt(buf: Buffer, off: number, n: number): number {
  const end = off + digits(n);
  let i = end;
  do {
    buf[--i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  return end;
}

export function putAsciiText(buf: Buffer, off: number, text: string): number {
  return putText(buf, off, text);
}

function putText(buf: Buffer, off: number, text: string): number {
  const end = putAscii(buf, off, text);
  return end >= 0 ? end : off + buf.write(text, off, 'utf8');
}

const PREAMBLE = 'NATS/1.0\r\n';

/**
 * Bytes of the NATS header block for `headers` plus the message id, or -1 when
 * a header cannot be carried (see headerProblem). Together with
 * writeHeaderBlock it encodes headers straight into the outgoing buffer, with
 * no intermediate strings.
 */
export function headerBlockSize(headers: Record<string, string>, msgId: string | undefined): number {
  let size = PREAMBLE.length + 2;
  for (const name in headers) {
    if (!validName(name)) return -1;
    const bytes = valueBytes(headers[name]);
    if (bytes < 0) return -1;
    size += name.length + 4 + bytes;
  }
  if (msgId !== undefined) {
    const bytes = valueBytes(msgId);
    if (bytes < 0) return -1;
    size += MSG_ID_HEADER.length + 4 + bytes;
  }
  return size;
}

/** Writes the block headerBlockSize measured into `buf` at `off`; returns the offset after it. */
export function writeHeaderBlock(buf: Buffer, off: number, headers: Record<string, string>, msgId: string | undefined): number {
  off = putAscii(buf, off, PREAMBLE);
  for (const name in headers) {
    off = putAscii(buf, off, name);
    buf[off++] = 0x3a; // :
    buf[off++] = 0x20;
    off = putText(buf, off, headers[name]!);
    buf[off++] = 13;
    buf[off++] = 10;
  }
  if (msgId !== undefined) {
    off = putAscii(buf, off, MSG_ID_HEADER);
    buf[off++] = 0x3a;
    buf[off++] = 0x20;
    off = putText(buf, off, msgId);
    buf[off++] = 13;
    buf[off++] = 10;
  }
  buf[off++] = 13;
  buf[off++] = 10;
  return off;
}

/** The end of an `HPUB` frame after its reply subject: ` <hlen> <total>\r\n<headers><body>\r\n`. */
export function writeHpubTail(buf: Buffer, off: number, hlen: number, headers: Record<string, string>, msgId: string | undefined, body: Uint8Array): number {
  buf[off++] = 0x20;
  off = putInt(buf, off, hlen);
  buf[off++] = 0x20;
  off = putInt(buf, off, hlen + body.length);
  buf[off++] = 13;
  buf[off++] = 10;
  off = writeHeaderBlock(buf, off, headers, msgId);
  buf.set(body, off);
  off += body.length;
  buf[off++] = 13;
  buf[off++] = 10;
  return off;
}

/** The NATS header block as text (`NATS/1.0\r\n...\r\n\r\n`), or undefined when a header cannot be carried. */
export function headerBlock(headers: Record<string, string>, msgId: string | undefined): string | undefined {
  let text = PREAMBLE;
  for (const name in headers) {
    const value = headers[name];
    if (!validName(name) || !validValue(value)) return undefined;
    text += `${name}: ${value}\r\n`;
  }
  if (msgId !== undefined) {
    if (!validValue(msgId)) return undefined;
    text += `${MSG_ID_HEADER}: ${msgId}\r\n`;
  }
  return `${text}\r\n`;
}

/** Why headerBlock refused `headers`. */
export function headerProblem(headers: Record<string, string>, msgId: string | undefined): string {
  for (const name in headers) {
    const value = headers[name];
    if (typeof value !== 'string') return `header ${name} is not a string`;
    if (!HEADER_NAME.test(name)) return `header name ${JSON.stringify(name)} is not valid on NATS (printable ASCII, no ":" or spaces)`;
    if (BAD_VALUE.test(value)) return `header ${name} has CR or LF in its value`;
  }
  if (msgId !== undefined && BAD_VALUE.test(msgId)) return 'the message id has CR or LF in it';
  return 'invalid headers';
}

/**
 * Headers for `NatsConnection.publish` (ephemeral topics), or why they cannot
 * be carried. Fast path: the block encoded once, in an object that has only
 * the `encode()` the client's publish calls (not a real MsgHdrs; the guard
 * test checks the client still accepts it). Fallback: the client's `headers()`.
 */
export function encodeHeaders(headers: Record<string, string>, msgId: string | undefined): MsgHdrs | string {
  if (!clientInternals) return publicHeaders(headers, msgId);
  const block = headerBlock(headers, msgId);
  if (block === undefined) return headerProblem(headers, msgId);
  return new EncodedHeaders(encoder.encode(block)) as unknown as MsgHdrs;
}

/** Headers built with the client's public `headers()` (the fallbacks), or why they cannot be carried. */
export function publicHeaders(headers: Record<string, string>, msgId: string | undefined): MsgHdrs | string {
  if (headerBlock(headers, msgId) === undefined) return headerProblem(headers, msgId);
  const h = natsHeaders();
  for (const name in headers) h.append(name, headers[name]!);
  if (msgId !== undefined) h.append(MSG_ID_HEADER, msgId);
  return h;
}

/**
 * The NATS client's protocol handler, to write many messages as one buffer
 * (one socket write per event-loop turn). Undefined if this client version
 * does not expose it; callers then fall back to `publish()` per message.
 */
export interface ProtocolWriter {
  sendCommand(cmd: Uint8Array): void;
  outMsgs: number;
  outBytes: number;
}

export function protocolWriter(nc: unknown): ProtocolWriter | undefined {
  if (!clientInternals) return undefined;
  const protocol = (nc as { protocol?: Partial<ProtocolWriter> }).protocol;
  return typeof protocol?.sendCommand === 'function' && typeof protocol.outMsgs === 'number' ? (protocol as ProtocolWriter) : undefined;
}

interface MsgInternals {
  _msg?: { hdr?: number; reply?: Uint8Array };
  _rdata?: Uint8Array;
}

/**
 * The header block of a received message as text (`''` when it has none),
 * read from the client's internal buffer; undefined when the internals are
 * not available (then use `msg.headers`).
 */
export function headerText(msg: Msg): string | undefined {
  if (!clientInternals) return undefined;
  const internals = msg as unknown as MsgInternals;
  const hdr = internals._msg?.hdr;
  const raw = internals._rdata;
  if (typeof hdr !== 'number' || !(raw instanceof Uint8Array)) return undefined;
  return hdr < 0 ? '' : decoder.decode(raw.subarray(0, hdr));
}

/** A received message's reply subject as bytes (no string decoding), or undefined when it has none. */
export function replyBytes(msg: Msg): Uint8Array | undefined {
  if (clientInternals) {
    const raw = (msg as unknown as MsgInternals)._msg?.reply;
    if (raw instanceof Uint8Array) return raw.length > 0 ? raw : undefined;
  }
  const reply = msg.reply;
  return reply ? encoder.encode(reply) : undefined;
}

/** Delivery details of a JetStream message (reused object: copy what you need). */
export interface AckInfo {
  deliveryCount: number;
  streamSeq: number;
  deliverySeq: number;
}
const info: AckInfo = { deliveryCount: 0, streamSeq: 0, deliverySeq: 0 };
// "$JS.ACK."
const ACK_PREFIX = [0x24, 0x4a, 0x53, 0x2e, 0x41, 0x43, 0x4b, 0x2e];

/**
 * Delivery details from a JetStream ack subject, read from its bytes:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (9
 * tokens) or the newer form with domain and account hash in front and a
 * random token at the end (12 tokens). Returns a shared object, or undefined.
 */
export function parseAckBytes(b: Uint8Array): AckInfo | undefined {
  const n = b.length;
  if (n < 16) return undefined;
  for (let i = 0; i < 8; i++) if (b[i] !== ACK_PREFIX[i]) return undefined;
  let dots = 0;
  for (let i = 0; i < n; i++) if (b[i] === 0x2e) dots++;
  let base: number;
  if (dots === 8) base = 4;
  else if (dots >= 10) base = 6;
  else return undefined;
  // Walk to the start of token `base`.
  let pos = 0;
  for (let t = 0; t < base; pos++) if (b[pos] === 0x2e) t++;
  let value = 0;
  let field = 0;
  for (; pos <= n && field < 3; pos++) {
    const c = pos < n ? b[pos]! : 0x2e;
    if (c === 0x2e) {
      if (field === 0) info.deliveryCount = value;
      else if (field === 1) info.streamSeq = value;
      else info.deliverySeq = value;
      field++;
      value = 0;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9) return undefined;
    value = value * 10 + d;
  }
  return field === 3 ? info : undefined;
}

/**
 * The message's stream timestamp (ms since epoch) from the `<ts>` token (in
 * nanoseconds) of an ack subject; undefined when there is none. Off the hot
 * path: only foreign-message subscriptions ask for it.
 */
export function ackTimestampMs(reply: Uint8Array): number | undefined {
  const tokens = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength).toString('latin1').split('.');
  const at = tokens.length === 9 ? 7 : tokens.length >= 11 ? 9 : -1;
  const ns = at < 0 ? '' : tokens[at]!;
  return /^\d{1,20}$/.test(ns) ? Number(BigInt(ns) / 1_000_000n) : undefined;
}

/** As parseAckBytes, from a string subject. */
export function parseAckSubject(reply: string): AckInfo | undefined {
  return parseAckBytes(encoder.encode(reply));
}

