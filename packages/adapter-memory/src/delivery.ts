/**
 * One delivery of a stored message to a group member (the DeliveredMessage a
 * sink settles), its states, and the per-key state that pins a key to a member.
 */
import type { DeliveredMessage } from '@busline/core/driver';
import type { Member } from './member.js';
import type { StoredMessage } from './topic.js';

const QUEUED = 0;
export const OUTSTANDING = 1;
export const SETTLED = 2;

/** Where one key's messages go within a group while any of them is unsettled. */
export interface KeyState {
  readonly key: string;
  /** The member this key is pinned to; a stopped member keeps it until its deliveries of the key settle. */
  owner: Member | null;
  /** This key's deliveries queued at, unsettled at, or waiting for a delayed redelivery from `owner`. */
  outstanding: number;
  /** Messages waiting for the key to get an active owner, in offset order. */
  parked: Delivery[] | null;
}

export class Delivery implements DeliveredMessage {
  readonly topic: string;
  readonly key: string | undefined;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  /** @internal */ _state = QUEUED;
  /** @internal */ _prev: Delivery | null = null;
  /** @internal */ _next: Delivery | null = null;

  constructor(
    /** @internal */ readonly _msg: StoredMessage,
    readonly deliveryCount: number,
    /** @internal */ readonly _ks: KeyState | null,
    /** @internal */ public _member: Member | null,
    topic: string,
  ) {
    this.topic = topic;
    this.key = _msg.key;
    this.headers = _msg.headers;
    this.body = _msg.body;
  }

  /** The append time: a getter, so deliveries carry no extra field for it. */
  get timestamp(): number {
    return this._msg.time;
  }

  ack(): void {
    if (this._state === OUTSTANDING) this._member!.settle(this, false, 0);
  }

  term(): void {
    if (this._state === OUTSTANDING) this._member!.settle(this, false, 0);
  }

  nack(delayMs: number): void {
    if (this._state === OUTSTANDING) this._member!.settle(this, true, delayMs > 0 ? delayMs : 0);
  }

  /** @internal The next delivery of the same message. */
  _again(): Delivery {
    return new Delivery(this._msg, this.deliveryCount + 1, this._ks, this._member, this.topic);
  }
}

/** Inserts `d` into `list[from..]`, kept in offset order. */
export function insertByOffset(list: (Delivery | undefined)[], from: number, d: Delivery): void {
  const offset = d._msg.offset;
  let lo = from;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!._msg.offset <= offset) lo = mid + 1;
    else hi = mid;
  }
  if (lo === list.length) list.push(d);
  else list.splice(lo, 0, d);
}
