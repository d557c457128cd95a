import type { NatsConnection } from '@nats-io/nats-core';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { DriverHooks } from '@busline/core/driver';
import type { NatsConfig } from './config.js';
import type { EphemeralConsumer } from './ephemeral-consumer.js';
import type { PullConsumer } from './pull-consumer.js';
import { TurnBatch } from './turn-batch.js';
import { protocolWriter, type ProtocolWriter } from './wire.js';

/**
 * What the consumers of one bus share, so that its handles do not grow with
 * the number of topics: the connection, the one outbox for the acks, naks
 * and terms of all of them (one socket write per event-loop turn; kept while
 * disconnected and sent after the reconnect), the once-per-turn flush of
 * cumulative acks, and the one 1-second housekeeping tick.
 */

const textDecoder = new TextDecoder();
/** The housekeeping tick: pin refreshes, stale pulls, a blocked cumulative member's standing pull. */
export const TICK_MS = 1_000;

export interface Ticker {
  tick(now: number): void;
}

/** What every consumer of a bus shares (one per driver). */
export class ConsumerHub {
  private readonly consumers = new Set<PullConsumer | EphemeralConsumer>();
  /** Others that need the housekeeping tick (group memberships), without a timer of their own. */
  private readonly tickers = new Set<Ticker>();
  private timer: NodeJS.Timeout | undefined;
  private connected = true;
  /** Acknowledgements written while disconnected, sent after the reconnect (the client would drop them). */
  private deferred: [Uint8Array, Uint8Array][] = [];
  private dirty = new Set<PullConsumer>();
  private flushScheduled = false;
  /** Subject, payload, subject, payload, ... of each reply, written at the end of this event-loop turn. */
  private readonly outbox = new TurnBatch<Uint8Array>((outbox) => this.writeOutbox(outbox));
  private readonly writer: ProtocolWriter | undefined;

  constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly hooks: DriverHooks,
    readonly config: NatsConfig,
    readonly apiPrefix: string,
  ) {
    this.writer = protocolWriter(nc);
  }

  get isConnected(): boolean {
    return this.connected;
  }

  get size(): number {
    return this.consumers.size;
  }

  add(consumer: PullConsumer | EphemeralConsumer): void {
    this.consumers.add(consumer);
    this.ensureTimer();
  }

  remove(consumer: PullConsumer | EphemeralConsumer): void {
    this.consumers.delete(consumer);
    this.releaseTimer();
  }

  addTicker(ticker: Ticker): void {
    this.tickers.add(ticker);
    this.ensureTimer();
  }

  removeTicker(ticker: Ticker): void {
    this.tickers.delete(ticker);
    this.releaseTimer();
  }

  private ensureTimer(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  private releaseTimer(): void {
    if (this.consumers.size > 0 || this.tickers.size > 0 || this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Publishes an ack/nak/term. They are written together once per event-loop
   * turn (one buffer, one socket write); kept for after the reconnect while
   * disconnected (the client would drop them); dropped once closed.
   */
  reply(subject: Uint8Array, payload: Uint8Array): void {
    if (this.nc.isClosed()) {
      this.hooks.count('acks_dropped_closed');
      return;
    }
    if (!this.connected) {
      if (this.deferred.length < 1_000_000) this.deferred.push([subject, payload]);
      return;
    }
    this.outbox.push(subject);
    this.outbox.push(payload);
  }

  private writeOutbox(outbox: Uint8Array[]): void {
    if (outbox.length === 0) return;
    if (this.nc.isClosed()) {
      this.hooks.count('acks_dropped_closed', outbox.length / 2);
      return;
    }
    if (!this.connected) {
      for (let i = 0; i < outbox.length; i += 2) this.deferred.push([outbox[i]!, outbox[i + 1]!]);
      return;
    }
    try {
      const writer = this.writer;
      if (writer === undefined) {
        for (let i = 0; i < outbox.length; i += 2) this.nc.publish(textDecoder.decode(outbox[i]!), outbox[i + 1]!);
        return;
      }
      // PUB <subject> <n>\r\n<payload>\r\n
      let total = 0;
      for (let i = 0; i < outbox.length; i += 2) {
        const n = outbox[i + 1]!.length;
        total += 4 + outbox[i]!.length + 1 + (n < 10 ? 1 : n < 100 ? 2 : String(n).length) + 2 + n + 2;
      }
      const buf = Buffer.allocUnsafe(total);
      let off = 0;
      for (let i = 0; i < outbox.length; i += 2) {
        const subject = outbox[i]!;
        const payload = outbox[i + 1]!;
        buf[off++] = 0x50; // P
        buf[off++] = 0x55; // U
        buf[off++] = 0x42; // B
        buf[off++] = 0x20;
        buf.set(subject, off);
        off += subject.length;
        buf[off++] = 0x20;
        off += buf.write(String(payload.length), off, 'latin1');
        buf[off++] = 13;
        buf[off++] = 10;
        buf.set(payload, off);
        off += payload.length;
        buf[off++] = 13;
        buf[off++] = 10;
      }
      writer.sendCommand(buf);
      writer.outMsgs += outbox.length / 2;
      writer.outBytes += total;
    } catch (error) {
      this.hooks.count('acks_dropped_closed', outbox.length / 2);
      if (!this.nc.isClosed()) this.hooks.error(error instanceof Error ? error : new Error(String(error)), 'sending acknowledgements');
    }
  }

  /** Writes the acknowledgements of this turn now (before an admin request that must come after them). */
  flushReplies(): void {
    this.outbox.flush();
  }

  scheduleFlush(consumer: PullConsumer): void {
    this.dirty.add(consumer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushAcks);
  }

  private readonly flushAcks = (): void => {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = new Set();
    for (const consumer of dirty) consumer.flushAcks();
  };

  onDisconnect(): void {
    this.connected = false;
  }

  onReconnect(): void {
    this.connected = true;
    const deferred = this.deferred;
    this.deferred = [];
    for (const [subject, payload] of deferred) this.reply(subject, payload);
    for (const consumer of this.consumers) consumer.onReconnect();
  }

  private tick(): void {
    const now = Date.now();
    for (const consumer of this.consumers) consumer.tick(now);
    for (const ticker of this.tickers) ticker.tick(now);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.close()));
    // Naks and acks the closes just made must be on the socket before the connection drains.
    this.outbox.flush();
  }
}
