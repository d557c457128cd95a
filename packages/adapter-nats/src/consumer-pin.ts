import { nanos } from '@nats-io/nats-core';
import type { ConsumerInfo } from '@nats-io/jetstream';
import { BuslineError, ErrorCode } from '@busline/core/driver';
import { PIN_GROUP, pinRefreshMs } from './consumer-admin.js';
import type { ConsumerHub } from './consumer-hub.js';
import type { InHand } from './in-hand.js';
import { adminError } from './streams.js';

/**
 * Pinned consumers (priority policy pinned_client): the server hands the
 * messages to one pull client at a time, the one holding the pin. The pin
 * lapses after priority_timeout without a new pull request from it, so a
 * pinned loop sends one at least every `pinRefreshMs`, even while blocked.
 *
 * This is one pull loop's side of the pin: the id the server gives it with
 * every message (`Nats-Pin-Id`), which its pull requests then carry (see
 * PullRequests); the pin lapsing (a 423 status); and giving it back (UNPIN)
 * once the loop has let go of its partition.
 */

export const PIN_HEADER = 'Nats-Pin-Id';
/** Pull requests of pinned loops expire within this, so stopping can wait for them to end. */
const PINNED_EXPIRES_MS = 2_000;

/** The pin id the server has for busline's priority group (nats.js does not type the consumer info's priority_groups). */
export function pinHolder(info: ConsumerInfo): string | undefined {
  const groups = (info as ConsumerInfo & { priority_groups?: { group: string; pinned_client_id?: string }[] }).priority_groups;
  return groups?.find((g) => g.group === PIN_GROUP)?.pinned_client_id;
}

/** The pin of a pinned consumer, as one pull loop holds it (or not). */
export class ConsumerPin {
  private pinId: string | undefined;
  /** How often a pull request must go out to keep the pin (ms). */
  readonly refreshMs: number;

  constructor(
    private readonly hub: ConsumerHub,
    /** The loop's messages in hand: a pin lapsing under them is reported, one given back only without them. */
    private readonly held: InHand,
    private readonly topic: string,
    private readonly stream: string,
    private readonly durable: string,
    /** The consumer's priority_timeout (ns). */
    priorityTimeoutNs: number | undefined,
  ) {
    const priorityTimeoutMs = (priorityTimeoutNs ?? 0) / nanos(1);
    this.refreshMs = priorityTimeoutMs > 0 ? pinRefreshMs(priorityTimeoutMs) : 5_000;
  }

  /** The pin id this loop holds (undefined: none). */
  get id(): string | undefined {
    return this.pinId;
  }

  /** How long the loop's pull requests live: `pullExpiresMs`, capped. */
  expiresMs(pullExpiresMs: number): number {
    // Pinned: requests end by themselves soon (stop and finish wait for that), within 2 s.
    return Math.min(pullExpiresMs, 2 * this.refreshMs, PINNED_EXPIRES_MS);
  }

  /** The pin the server gave this loop (on each message it delivers to the pinned client). */
  take(pin: string | undefined): void {
    if (pin === undefined) return;
    if (pin !== this.pinId) {
      this.pinId = pin;
      this.hub.hooks.count('pins_taken');
    }
  }

  /** The pin lapsed (a 423 status): reported when messages are in hand, whose keys another member may now handle. */
  lost(): void {
    this.pinId = undefined;
    this.hub.hooks.count('pins_lost');
    if (this.held.size === 0) return;
    this.hub.hooks.error(
      new BuslineError(
        ErrorCode.BrokerUnavailable,
        `the pin of consumer ${this.durable} of "${this.topic}" lapsed while ${this.held.size} message(s) were in hand: another member may now handle the same keys. ` +
          'A pin lapses when its member sends no pull request for priority_timeout (an event loop blocked that long, or a lost connection).',
        { details: { topic: this.topic, durable: this.durable, held: this.held.size } },
      ),
      'nats consumer',
    );
  }

  /**
   * Gives the pin back (server ≥ 2.11 UNPIN) once everything is settled, so
   * another member can take the partition at once instead of after
   * priority_timeout. Only our own pin: the consumer info is read first, and
   * a pin that moved on is left alone. Held naks and acknowledgements go out
   * (`sendHeldNaks`, and are processed: flush round trip) before it.
   */
  async release(sendHeldNaks: () => Promise<void>): Promise<boolean> {
    const pin = this.pinId;
    // Disconnected: the pin lapses by itself; waiting for admin requests would only delay close.
    if (pin === undefined || this.held.size > 0 || this.hub.nc.isClosed() || !this.hub.isConnected) return false;
    try {
      await sendHeldNaks();
      await this.hub.nc.flush();
      const info = await this.hub.jsm.consumers.info(this.stream, this.durable);
      if (pinHolder(info) !== pin) return false;
      await this.hub.jsm.consumers.unpin(this.stream, this.durable, PIN_GROUP);
      this.pinId = undefined;
      this.hub.hooks.count('pins_released');
      return true;
    } catch (error) {
      if (!this.hub.nc.isClosed()) this.hub.hooks.error(adminError(this.topic, `unpinning consumer ${this.durable}`, error), 'nats consumer');
      return false;
    }
  }
}
