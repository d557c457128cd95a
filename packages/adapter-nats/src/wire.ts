import type { Msg, MsgHdrs } from '@nats-io/nats-core';

/**
 * Header encoding and decoding on the hot paths. The NATS client's own
 * `MsgHdrs` keeps a Map of arrays and matches keys by scanning them, which is
 * a noticeable share of the per-message cost at 100k msg/s; busline headers
 * are a flat string map, so they are written and read directly in the NATS
 * header format (`NATS/1.0\r\nName: value\r\n...\r\n\r\n`).
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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

/**
 * Encodes `headers` plus the message id. Returns a string saying what is wrong
 * for a header NATS cannot carry (a name with spaces or `:`, a value with CR/LF).
 */
export function encodeHeaders(headers: Record<string, string>, msgId: string | undefined): MsgHdrs | string {
  let text = 'NATS/1.0\r\n';
  for (const name in headers) {
    const value = headers[name];
    if (typeof value !== 'string') return `header ${name} is not a string`;
    if (!HEADER_NAME.test(name)) return `header name ${JSON.stringify(name)} is not valid on NATS (printable ASCII, no ":" or spaces)`;
    if (BAD_VALUE.test(value)) return `header ${name} has CR or LF in its value`;
    text += `${name}: ${value}\r\n`;
  }
  if (msgId !== undefined) {
    if (BAD_VALUE.test(msgId)) return 'the message id has CR or LF in it';
    text += `${MSG_ID_HEADER}: ${msgId}\r\n`;
  }
  text += '\r\n';
  return new EncodedHeaders(encoder.encode(text)) as unknown as MsgHdrs;
}

/** A status message (heartbeat, request timeout, no responders): code and headers. */
export interface Status {
  code: number;
  description: string;
  headers: Record<string, string>;
}

interface MsgInternals {
  _msg?: { hdr?: number };
  _rdata?: Uint8Array;
}

/** The raw header block of a received message, or undefined when it has none. */
function headerBytes(msg: Msg): Uint8Array | undefined | null {
  const internals = msg as unknown as MsgInternals;
  const hdr = internals._msg?.hdr;
  const raw = internals._rdata;
  if (typeof hdr !== 'number' || !(raw instanceof Uint8Array)) return null; // not the client we know: use the public API
  return hdr > -1 ? raw.subarray(0, hdr) : undefined;
}

/** Parses a NATS header block into a status line and a flat map (the first value of a repeated name wins). */
function parseHeaderText(text: string, into: Record<string, string>): { code: number; description: string } {
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  const first = text.slice(0, lineEnd);
  let code = 0;
  let description = '';
  if (first.length > 8) {
    const rest = first.slice(8).trim();
    const space = rest.indexOf(' ');
    code = parseInt(space < 0 ? rest : rest.slice(0, space), 10) || 0;
    description = space < 0 ? '' : rest.slice(space + 1).trim();
  }
  let pos = lineEnd + 2;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    if (end > pos) {
      const colon = text.indexOf(':', pos);
      if (colon > pos && colon < end) {
        const name = text.slice(pos, colon);
        if (!(name in into)) into[name] = text.slice(colon + 1, end).trim();
      }
    }
    pos = end + 2;
  }
  return { code, description };
}

/** Headers of a received message as a flat map, plus its status code (0 for a normal message). */
export function decodeHeaders(msg: Msg): Status {
  const headers: Record<string, string> = {};
  const bytes = headerBytes(msg);
  if (bytes === undefined) return { code: 0, description: '', headers };
  if (bytes !== null) {
    const { code, description } = parseHeaderText(decoder.decode(bytes), headers);
    return { code, description, headers };
  }
  const h = msg.headers;
  if (!h) return { code: 0, description: '', headers };
  for (const [name, values] of h) if (values.length > 0 && !(name in headers)) headers[name] = values[0]!;
  return { code: h.code, description: h.description, headers };
}

/**
 * Delivery details from a JetStream ack subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` or the
 * newer form with domain and account hash (and a trailing token) in front.
 */
export function parseAckSubject(reply: string): { deliveryCount: number; streamSeq: number; deliverySeq: number } | undefined {
  const t = reply.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  let base: number;
  if (t.length === 9) base = 4;
  else if (t.length >= 11) base = 6;
  else return undefined;
  const deliveryCount = Number(t[base]);
  const streamSeq = Number(t[base + 1]);
  const deliverySeq = Number(t[base + 2]);
  if (!Number.isSafeInteger(deliveryCount) || !Number.isSafeInteger(streamSeq) || !Number.isSafeInteger(deliverySeq)) return undefined;
  return { deliveryCount, streamSeq, deliverySeq };
}
