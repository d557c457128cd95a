import type { Msg } from '@nats-io/nats-core';
import { headerText } from './wire.js';

/** Remembered names per reader; a block with more lines takes the general path. */
const MAX_LINES = 64;

/**
 * Reads the headers of the messages of one subscription into flat maps.
 *
 * Busline messages on a subscription carry the same header names in the same
 * order (ce-specversion, ce-id, ... Nats-Msg-Id), so the reader remembers the
 * names of the last block and a map of that shape. A block with the same names
 * is read by matching each name in place (no substring, no string-table
 * lookup) and filling a clone of the remembered map, which costs about a third
 * of building the map key by key, the largest part of reading a message. Any
 * other block (other names, another order, a repeated name) is read the
 * general way and becomes the remembered shape.
 */
export class HeaderReader {
  /** The value of the `skip` header in the block read last (undefined when it had none). */
  skipped: string | undefined;
  private names: string[] = [];
  private shape: Record<string, string> | undefined;
  /** Names and values of the block being read, by line. */
  private readonly lineNames: string[] = [];
  private readonly values: string[] = [];

  /**
   * `skip`: a header the server adds to some messages only (Nats-Pin-Id),
   * left out of the maps and kept in `skipped`, so the blocks keep one shape
   * (deleting it from a map afterwards made every map a slow dictionary).
   */
  constructor(private readonly skip?: string) {}

  read(msg: Msg): Record<string, string> {
    const text = headerText(msg);
    if (text !== undefined) return this.readText(text);
    this.skipped = undefined;
    return decodeHeaders(msg).headers;
  }

  /** Reads a header block given as text (`NATS/1.0\r\nName: value\r\n...\r\n\r\n`). */
  readText(text: string): Record<string, string> {
    this.skipped = undefined;
    if (text === '') return {};
    const names = this.names;
    const lineNames = this.lineNames;
    const values = this.values;
    const len = text.length;
    let lineEnd = text.indexOf('\r\n');
    if (lineEnd < 0) lineEnd = len;
    let pos = lineEnd + 2;
    let line = 0;
    let same = this.shape !== undefined;
    while (pos < len) {
      let end = text.indexOf('\r\n', pos);
      if (end < 0) end = len;
      if (end === pos) break;
      let colon: number;
      let name: string;
      const known = names[line];
      if (same && known !== undefined && text.charCodeAt(pos + known.length) === 0x3a && text.startsWith(known, pos)) {
        name = known;
        colon = pos + known.length;
      } else {
        colon = text.indexOf(':', pos);
        if (colon <= pos || colon >= end) {
          same = false;
          pos = end + 2; // not a header line
          continue;
        }
        name = text.substring(pos, colon);
        if (name === this.skip) {
          this.skipped = valueOf(text, colon, end);
          pos = end + 2;
          continue;
        }
        same = false;
      }
      lineNames[line] = name;
      values[line] = valueOf(text, colon, end);
      line++;
      pos = end + 2;
    }
    if (same && line === names.length) {
      const headers = { ...this.shape! };
      for (let i = 0; i < line; i++) headers[names[i]!] = values[i]!;
      return headers;
    }
    return this.remember(line);
  }

  /** Builds the map of a block of another shape (the first value of a repeated name wins) and remembers its shape when it can. */
  private remember(count: number): Record<string, string> {
    const headers: Record<string, string> = {};
    let repeated = false;
    for (let i = 0; i < count; i++) {
      const name = this.lineNames[i]!;
      if (headers[name] === undefined) headers[name] = this.values[i]!;
      else repeated = true;
    }
    if (repeated || count > MAX_LINES) {
      this.shape = undefined;
      this.names = [];
    } else {
      // A map's keys are interned strings; the copy keeps the shape apart from the map handed out.
      this.names = Object.keys(headers);
      this.shape = { ...headers };
    }
    return headers;
  }
}

/** The value of the header line whose colon is at `colon` and which ends at `end`, without surrounding spaces. */
function valueOf(text: string, colon: number, end: number): string {
  let from = colon + 1;
  while (text.charCodeAt(from) === 0x20) from++;
  let to = end;
  while (to > from && text.charCodeAt(to - 1) === 0x20) to--;
  return text.substring(from, to);
}

/** A received message's status (heartbeat, request timeout, no responders; 0 for a normal message) and headers. */
export interface Status {
  code: number;
  description: string;
  headers: Record<string, string>;
}

/** For status messages, which are rare and of changing shapes. */
const statusReader = new HeaderReader();

/** Code and description of a header block's status line (`NATS/1.0 408 Request Timeout`). */
function statusLine(text: string): { code: number; description: string } {
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  if (lineEnd <= 8) return { code: 0, description: '' };
  const rest = text.slice(8, lineEnd).trim();
  const space = rest.indexOf(' ');
  return {
    code: parseInt(space < 0 ? rest : rest.slice(0, space), 10) || 0,
    description: space < 0 ? '' : rest.slice(space + 1).trim(),
  };
}

/** Headers of a received message as a flat map, plus its status code (0 for a normal message). */
export function decodeHeaders(msg: Msg): Status {
  const text = headerText(msg);
  if (text !== undefined) return { ...statusLine(text), headers: statusReader.readText(text) };
  // Not the client internals this was written against: the public API.
  const h = msg.headers;
  if (!h) return { code: 0, description: '', headers: {} };
  const headers: Record<string, string> = {};
  for (const [name, values] of h) if (values.length > 0 && headers[name] === undefined) headers[name] = values[0]!;
  return { code: h.code, description: h.description, headers };
}
