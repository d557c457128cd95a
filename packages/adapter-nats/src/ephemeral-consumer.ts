import type { Msg, Subscription } from '@nats-io/nats-core';
import type { DeliveredMessage, DriverSubscription, MessageSink } from '@busline/core/driver';
import type { ConsumerHub } from './consumer-hub.js';
import { HeaderReader } from './header-reader.js';
import { takeKey } from './wire.js';

/**
 * The subscriber of an ephemeral topic (core NATS, no JetStream): nothing to
 * pull, acknowledge or redeliver, so none of the pull loop's machinery; it
 * shares only the hub (housekeeping, close).
 */

/** An ephemeral subscriber further behind than this drops the newest messages (counted), like a NATS slow consumer. */
export const EPHEMERAL_BUFFER_LIMIT = 65_536;

/**
 * An ephemeral topic on core NATS: a plain subscription (queue group = the
 * busline group, so members share and every group gets every message).
 * At-most-once: nothing to acknowledge, nothing redelivered.
 */
export class EphemeralConsumer implements DriverSubscription {
  private readonly sub: Subscription;
  private buffer: DeliveredMessage[] = [];
  private readonly headerReader = new HeaderReader();
  private flushQueued = false;
  private blocked = false;
  private stopped = false;

  constructor(
    private readonly hub: ConsumerHub,
    private readonly sink: MessageSink,
    readonly topic: string,
    group: string,
  ) {
    this.sub = hub.nc.subscribe(topic, { queue: group, callback: this.onMessage });
    hub.add(this);
  }

  private readonly onMessage = (error: Error | null, msg: Msg): void => {
    if (error || this.stopped) return;
    if (this.buffer.length >= EPHEMERAL_BUFFER_LIMIT) {
      this.hub.hooks.count('ephemeral_dropped');
      return;
    }
    const headers = this.headerReader.read(msg);
    this.buffer.push({
      topic: this.topic,
      key: takeKey(headers),
      headers,
      body: msg.data,
      deliveryCount: 1,
      ack: noop,
      nack: noop,
      term: noop,
    });
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  };

  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.blocked || this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    const result = this.sink.deliver(batch);
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      this.blocked = true;
      (result as Promise<void>).then(this.unblock, this.unblock);
    }
  };

  private readonly unblock = (): void => {
    this.blocked = false;
    if (this.buffer.length > 0) this.flush();
  };

  onReconnect(): void {}

  tick(): void {}

  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.buffer = [];
      try {
        this.sub.unsubscribe();
      } catch {
        // closed connection
      }
    }
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.stop();
    this.hub.remove(this);
  }
}

function noop(): void {}
