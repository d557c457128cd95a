/**
 * A topic: its stored messages (the append-only log) with retention by count,
 * bytes and time, deduplication on publish, and ephemeral fan-out. Its groups
 * read the log; the broker keeps one Topic per name.
 */
import {
  BuslineError,
  ErrorCode,
  type FieldDifference,
  type PublishOutcome,
  type TopicOptions,
  type TopicState,
  type WireMessage,
} from '@busline/core/driver';
import { DEDUPE_HEADER, Deduper } from './deduper.js';
import type { Group } from './group.js';

export interface StoredMessage {
  readonly offset: number;
  readonly key: string | undefined;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  /** Append time (ms since epoch), for time-based retention. */
  readonly time: number;
  /** Bytes counted against `maxBytes` (body plus header names and values); 0 while the topic has no byte limit. */
  size: number;
  /** Published to an ephemeral topic: never stored, never redelivered. */
  readonly ephemeral: boolean;
}

function messageSize(headers: Record<string, string>, body: Uint8Array): number {
  let size = body.byteLength;
  for (const name in headers) size += name.length + (headers[name]?.length ?? 0);
  return size;
}

function normalizeOptions(options: Partial<TopicOptions>): TopicOptions {
  const normalized: TopicOptions = { persistence: options.persistence ?? 'persistent' };
  if (options.retentionMs !== undefined) normalized.retentionMs = options.retentionMs;
  if (options.maxMessages !== undefined) normalized.maxMessages = options.maxMessages;
  if (options.maxBytes !== undefined) normalized.maxBytes = options.maxBytes;
  if (options.description !== undefined) normalized.description = options.description;
  return normalized;
}

export class Topic {
  options: TopicOptions;
  persistent: boolean;
  /** Stored messages; `log[head]` has offset `firstOffset`. */
  log: (StoredMessage | undefined)[] = [];
  head = 0;
  firstOffset = 0;
  nextOffset = 0;
  bytes = 0;
  private trackBytes = false;
  readonly groups = new Map<string, Group>();
  private deduper: Deduper | undefined;

  constructor(readonly name: string, options: Partial<TopicOptions>) {
    this.options = normalizeOptions(options);
    this.persistent = this.options.persistence === 'persistent';
    this.setByteTracking();
  }

  get stored(): number {
    return this.log.length - this.head;
  }

  state(): TopicState {
    this.expire();
    const o = this.options;
    return {
      persistence: o.persistence,
      retentionMs: o.retentionMs ?? null,
      maxMessages: o.maxMessages ?? null,
      maxBytes: o.maxBytes ?? null,
      replicas: 1,
      partitions: 1,
      description: o.description ?? null,
    };
  }

  /** Applies new options; retention takes effect at once. Returns the fields it cannot honour. */
  update(options: Partial<TopicOptions>): FieldDifference[] {
    const next = normalizeOptions(options);
    const wasPersistent = this.persistent;
    this.options = next;
    this.persistent = next.persistence === 'persistent';
    if (wasPersistent && !this.persistent) this.evict(this.stored);
    this.setByteTracking();
    this.enforce();
    const refused: FieldDifference[] = [];
    if (options.partitions !== undefined && options.partitions !== 1)
      refused.push({ field: 'partitions', wanted: options.partitions, actual: 1 });
    if (options.replicas !== undefined && options.replicas !== 1)
      refused.push({ field: 'replicas', wanted: options.replicas, actual: 1 });
    return refused;
  }

  private setByteTracking(): void {
    const track = this.options.maxBytes !== undefined;
    if (track === this.trackBytes) return;
    this.trackBytes = track;
    let bytes = 0;
    for (let i = this.head; i < this.log.length; i++) {
      const m = this.log[i]!;
      m.size = track ? messageSize(m.headers, m.body) : 0;
      bytes += m.size;
    }
    this.bytes = bytes;
  }

  /**
   * Appends in order. `atomic`: every message is checked first, and one that
   * would be refused (too large, or an id stored within the dedupe window or
   * repeated in the call) refuses them all, as NATS's atomic batches do.
   */
  publish(messages: readonly WireMessage[], dedupeWindowMs: number, maxMessageBytes = Infinity, atomic = false): PublishOutcome[] {
    const count = messages.length;
    const outcomes = new Array<PublishOutcome>(count).fill(undefined);
    if (count === 0) return outcomes;
    const now = Date.now();
    const persistent = this.persistent;
    const dedupe = dedupeWindowMs > 0 ? (this.deduper ??= new Deduper(now)) : undefined;
    if (atomic) {
      const refused = this.atomicRefusal(messages, maxMessageBytes, dedupe !== undefined ? (id) => dedupe.has(id, now, dedupeWindowMs) : undefined);
      if (refused !== undefined) return outcomes.fill(refused);
    }
    let appended = false;
    for (let i = 0; i < count; i++) {
      const message = messages[i]!;
      const headers = message.headers;
      const size = messageSize(headers, message.body);
      const refusal = this.refusal(size, maxMessageBytes);
      if (refusal !== undefined) {
        outcomes[i] = refusal;
        continue;
      }
      if (dedupe !== undefined) {
        const id = message.id ?? headers[DEDUPE_HEADER];
        if (id !== undefined && dedupe.seen(id, now, dedupeWindowMs)) continue;
      }
      const stored: StoredMessage = {
        offset: this.nextOffset++,
        key: message.key ?? undefined,
        // The broker takes ownership: every group reads the same object, so nobody may change it.
        headers: Object.freeze(headers),
        body: message.body,
        time: now,
        size,
        ephemeral: !persistent,
      };
      if (persistent) {
        this.log.push(stored);
        this.bytes += size;
        appended = true;
      } else {
        this.firstOffset = this.nextOffset;
        this.fanOut(stored);
      }
    }
    if (appended) {
      this.enforce(now);
      for (const group of this.groups.values()) if (group.members.length > 0) group.wake();
    }
    return outcomes;
  }

  /** Why a message of `size` bytes cannot be stored, if it cannot. */
  private refusal(size: number, maxMessageBytes: number): BuslineError | undefined {
    if (size > maxMessageBytes) {
      // As NATS (max_payload) and Kafka (message.max.bytes) do: what works here must work there.
      return new BuslineError(
        ErrorCode.MessageTooLarge,
        `message of ${size} bytes (body and headers) is larger than the broker accepts (maxMessageBytes ${maxMessageBytes}); make it smaller`,
        { details: { topic: this.name, size, maxMessageBytes } },
      );
    }
    const maxBytes = this.options.maxBytes;
    if (maxBytes !== undefined && size > maxBytes) {
      return new BuslineError(ErrorCode.PublishRejected, `message of ${size} bytes is larger than topic "${this.name}" allows (maxBytes ${maxBytes})`, {
        details: { topic: this.name, size, maxBytes },
      });
    }
    return undefined;
  }

  /** Why an atomic call must store nothing, if it must: the first message that would be refused or deduplicated. */
  private atomicRefusal(messages: readonly WireMessage[], maxMessageBytes: number, stored: ((id: string) => boolean) | undefined): BuslineError | undefined {
    const ids = new Set<string>();
    for (let i = 0; i < messages.length; i++) {
      const { id: eventId, headers, body } = messages[i]!;
      const refusal = this.refusal(messageSize(headers, body), maxMessageBytes);
      if (refusal !== undefined) {
        return new BuslineError(refusal.code, `atomic batch refused, nothing stored: message ${i}: ${refusal.message}`, { details: { ...refusal.details, index: i } });
      }
      const id = eventId ?? headers[DEDUPE_HEADER];
      if (id === undefined || stored === undefined) continue;
      if (ids.has(id) || stored(id)) {
        return new BuslineError(
          ErrorCode.PublishRejected,
          `atomic batch refused, nothing stored: event id "${id}" (message ${i}) ${ids.has(id) ? 'appears twice in the batch' : 'is already stored (dedupe window)'}; an atomic batch takes new ids only`,
          { retryable: false, details: { topic: this.name, index: i, id } },
        );
      }
      ids.add(id);
    }
    return undefined;
  }

  /** Ephemeral: hand the message to one member of every group that has members now. */
  private fanOut(message: StoredMessage): void {
    for (const group of this.groups.values()) group.offerEphemeral(message);
  }

  /** Retention by count, bytes and (lazily) time: evicts from the head. */
  enforce(now?: number): void {
    const { maxMessages, maxBytes } = this.options;
    if (maxMessages !== undefined && this.stored > maxMessages) this.evict(this.stored - maxMessages);
    if (maxBytes !== undefined) {
      let n = 0;
      let bytes = this.bytes;
      while (bytes > maxBytes && this.head + n < this.log.length) bytes -= this.log[this.head + n++]!.size;
      if (n > 0) this.evict(n);
    }
    this.expire(now);
  }

  /** Time-based retention, evaluated when the log is appended to or read. */
  expire(now?: number): void {
    const retentionMs = this.options.retentionMs;
    if (retentionMs === undefined || this.stored === 0) return;
    const cutoff = (now ?? Date.now()) - retentionMs;
    let n = 0;
    while (this.head + n < this.log.length && this.log[this.head + n]!.time <= cutoff) n++;
    if (n > 0) this.evict(n);
  }

  private evict(n: number): void {
    const log = this.log;
    for (let i = 0; i < n; i++) {
      this.bytes -= log[this.head]!.size;
      log[this.head++] = undefined;
    }
    this.firstOffset += n;
    if (this.head >= 1024 && this.head * 2 >= log.length) {
      this.log = log.slice(this.head);
      this.head = 0;
    }
  }

  at(offset: number): StoredMessage | undefined {
    return this.log[this.head + (offset - this.firstOffset)];
  }

  get dedupeSize(): number {
    return this.deduper?.size ?? 0;
  }
}
