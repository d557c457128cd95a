import type { NatsConnection } from '@nats-io/nats-core';
import { BrokerUnavailableError, BuslineError, ErrorCode, errorMessage, type DriverHooks, type PublishOutcome } from '@busline/core/driver';
import { INFLIGHT, type Entry } from './publish-entry.js';
import { isMaxPayloadError, messageTooLarge } from './publish-errors.js';
import { digits, protocolWriter, publicHeaders, putAsciiText, putInt, writeHpubTail, type ProtocolWriter } from './wire.js';

/**
 * How the Publisher's messages get onto the socket: each in-flight entry as
 * an `HPUB` frame with the reply subject `<inbox>.<token>`, all of one write
 * in one buffer handed to the client's protocol writer (one socket write), or,
 * without access to it, the client's public `publish()` per message. A
 * message over the server's max_payload is refused here, before it is
 * written (the server would close the connection over it).
 */

/** Writes the Publisher's entries to its connection. */
export class PublishWriter {
  private readonly writer: ProtocolWriter | undefined;
  private lastSubject = '';
  private lastSubjectBytes = 0;

  constructor(
    private readonly nc: NatsConnection,
    /** The reply subject prefix, `<inbox>.`: the token follows it. */
    private readonly prefix: string,
    private readonly hooks: DriverHooks,
    /** Ends an entry that cannot be written (the Publisher's `finish`). */
    private readonly finish: (entry: Entry, outcome: PublishOutcome) => void,
  ) {
    this.writer = protocolWriter(nc);
  }

  /**
   * Writes entries as `HPUB <subject> <inbox>.<token> <hlen> <tlen>` frames,
   * all into one buffer handed to the client's protocol writer.
   */
  write(entries: Entry[]): void {
    if (entries.length === 0) return;
    if (this.nc.isClosed()) {
      const error = new BrokerUnavailableError('the NATS connection is closed');
      for (const entry of entries) this.finish(entry, error);
      return;
    }
    const writer = this.writer;
    if (writer === undefined) {
      for (const entry of entries) this.writeOne(entry);
      return;
    }
    const maxPayload = this.nc.info?.max_payload ?? Number.MAX_SAFE_INTEGER;
    const prefix = this.prefix;
    // HPUB <subject> <prefix><token> <hlen> <tlen>\r\n<headers><body>\r\n
    const fixed = 5 + 1 + prefix.length + 1 + 1 + 2 + 2;
    let total = 0;
    let count = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const size = entry.hlen + entry.body.length;
      if (size > maxPayload) {
        this.finish(entry, messageTooLarge(entry.topic, size, maxPayload));
        continue;
      }
      total += fixed + this.subjectBytes(entry.subject) + digits(entry.token) + digits(entry.hlen) + digits(size) + size;
      count++;
    }
    if (count === 0) return;
    const now = Date.now();
    const buf = Buffer.allocUnsafe(total);
    let off = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.state !== INFLIGHT) continue;
      entry.sentAt = now;
      off = putAsciiText(buf, off, 'HPUB ');
      off = putAsciiText(buf, off, entry.subject);
      buf[off++] = 0x20;
      off = putAsciiText(buf, off, prefix);
      off = putInt(buf, off, entry.token);
      off = writeHpubTail(buf, off, entry.hlen, entry.headers, entry.msgId, entry.body);
    }
    if (off !== total) {
      // Cannot happen (sizes are computed from the same strings); never hand the client a torn buffer.
      const failure = new BuslineError(ErrorCode.PublishRejected, `internal error: encoded ${off} bytes, expected ${total}`);
      for (const entry of entries) if (entry.state === INFLIGHT) this.finish(entry, failure);
      this.hooks.error(failure, 'nats publisher');
      return;
    }
    try {
      writer.sendCommand(buf);
      writer.outMsgs += count;
      writer.outBytes += total;
    } catch (error) {
      const failure = new BrokerUnavailableError(`publishing failed: ${errorMessage(error)}`, error);
      for (const entry of entries) if (entry.state === INFLIGHT) this.finish(entry, failure);
    }
  }

  /** UTF-8 length of a subject (topics are ASCII, but the driver API does not promise it). */
  private subjectBytes(subject: string): number {
    if (subject !== this.lastSubject) {
      this.lastSubject = subject;
      this.lastSubjectBytes = Buffer.byteLength(subject);
    }
    return this.lastSubjectBytes;
  }

  /** Fallback without access to the protocol writer: the public publish() with the client's own headers. */
  private writeOne(entry: Entry): void {
    entry.sentAt = Date.now();
    const size = entry.hlen + entry.body.length;
    const maxPayload = this.nc.info?.max_payload;
    if (maxPayload !== undefined && size > maxPayload) {
      this.finish(entry, messageTooLarge(entry.topic, size, maxPayload));
      return;
    }
    try {
      const headers = publicHeaders(entry.headers, entry.msgId);
      // Cannot happen: the driver checked the headers (headerBlockSize) before queueing the message.
      if (typeof headers === 'string') throw new Error(headers);
      this.nc.publish(entry.subject, entry.body, { reply: this.prefix + entry.token, headers });
    } catch (error) {
      this.finish(
        entry,
        isMaxPayloadError(error)
          ? messageTooLarge(entry.topic, size, this.nc.info?.max_payload, error)
          : new BrokerUnavailableError(`publishing to "${entry.topic}" failed: ${errorMessage(error)}`, error),
      );
    }
  }
}
