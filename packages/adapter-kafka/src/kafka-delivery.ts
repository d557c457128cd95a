/**
 * KafkaDelivery: one fetched record as the DeliveredMessage core's sink
 * settles, and how it is made from a kafkajs record (offset tracking, header
 * decoding). Kept apart from PartitionFlow, which only creates deliveries
 * and receives their settlements.
 */
import type { DeliveredMessage } from '@busline/core/driver';
import type { KafkaMessage } from 'kafkajs';
import { recordHeaderText, recordKeyText, recordOffset, recordTimestamp, recordValue } from './kafkajs-fetched-record.js';
import type { PartitionState } from './partition-state.js';
import type { SinkEntry } from './subscription-router.js';

/** What a delivery reports its settlement to (the PartitionFlow). */
export interface DeliveryOwner {
  /** Called by a delivery, exactly once. */
  settle(entry: SinkEntry, state: PartitionState, offset: number, handled: boolean, record: KafkaMessage): void;
}

export class KafkaDelivery implements DeliveredMessage {
  private settled = false;
  /** `partition:offset`: the record's identity within its group, the same on every delivery of it. */
  readonly deliveryId: string;

  constructor(
    private readonly owner: DeliveryOwner,
    private readonly entry: SinkEntry,
    private readonly state: PartitionState,
    private readonly record: KafkaMessage,
    private readonly offset: number,
    readonly topic: string,
    readonly key: string | undefined,
    readonly headers: Record<string, string>,
    readonly body: Uint8Array,
    /** 1, or more where the partition's attempt ledger counted earlier attempts that ended with their process. */
    readonly deliveryCount: number,
  ) {
    this.deliveryId = `${state.partition}:${offset}`;
  }

  /** The record timestamp (CreateTime or LogAppendTime, as the topic says), read only when asked. */
  get timestamp(): number | undefined {
    return recordTimestamp(this.record);
  }

  ack(): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this.entry, this.state, this.offset, true, this.record);
  }

  term(): void {
    this.ack();
  }

  nack(_delayMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.settle(this.entry, this.state, this.offset, false, this.record);
  }
}

/** The delivery of record `m` of `state` to `entry`; tracks its offset in the partition's watermark. */
export function kafkaDelivery(owner: DeliveryOwner, entry: SinkEntry, state: PartitionState, m: KafkaMessage): KafkaDelivery {
  const offset = recordOffset(m);
  // A requeued record is tracked already.
  if (offset > state.tracked) {
    state.watermark.track(offset);
    state.tracked = offset;
  }
  return new KafkaDelivery(
    owner,
    entry,
    state,
    m,
    offset,
    state.topic,
    recordKeyText(m),
    recordHeaderText(m),
    recordValue(m),
    state.ledger.countFor(offset),
  );
}
