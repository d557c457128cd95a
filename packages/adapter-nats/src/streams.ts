import { nanos } from '@nats-io/nats-core';
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import {
  BrokerUnavailableError,
  BuslineError,
  ErrorCode,
  TopicError,
  TopicMismatchError,
  errorMessage,
  type FieldDifference,
  type TopicOptions,
  type TopicState,
} from '@busline/core/driver';
import type { NatsConfig } from './config.js';
import { streamNameFor } from './names.js';
import { partitionedSubjects, partitionsOf, partitionTransform, storesTopic } from './partition-layout.js';

const NO_PARTITIONS = 'partitions need nats-server 2.11 or newer (subject transforms with partition(), pinned priority groups); upgrade the server or ask for 1';
export const STREAM_NOT_FOUND = 10059;
const REPLICAS_NOT_SUPPORTED = 10074;

/**
 * Topic ↔ stream mapping: busline topic options become JetStream stream
 * limits, and a stream's config is reported back in busline terms so core's
 * provisioner can compare, update or complain.
 *
 * | busline          | JetStream stream           |
 * | ---------------- | -------------------------- |
 * | persistent topic | stream, subject = topic    |
 * | retentionMs      | max_age (ns; 0 = none)     |
 * | maxMessages      | max_msgs (-1 = none)       |
 * | maxBytes         | max_bytes (-1 = none)      |
 * | replicas         | num_replicas               |
 * | description      | description                |
 * | partitions N > 1 | subject `<topic>.~k.*`, transformed to N partitions (see partition-layout) |
 */
export class StreamAdmin {
  private readonly shared: boolean;
  /** Partitions of each topic as last read from or written to its stream. */
  private readonly layouts = new Map<string, number>();
  /** Topics whose stream takes fast-ingest batches (`allow_batched`), as last read or written. */
  private readonly batched = new Map<string, boolean>();

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly config: NatsConfig,
    /** Whether the server can pin consumers (≥ 2.11), which partitions need. */
    private readonly canPartition: boolean,
    /** Whether the server takes fast-ingest batches (≥ 2.14): streams made here allow them. */
    private readonly canBatch = false,
    /** Whether the server takes atomic batches (≥ 2.12): streams made here allow them. */
    private readonly canAtomic = false,
  ) {
    this.shared = config.streamMode === 'shared';
  }

  /** Whether the topic's stream takes fast-ingest batches (false until read). */
  batchedFor(topic: string): boolean {
    return this.batched.get(topic) ?? false;
  }

  /** After the server refused a fast batch for the topic's stream. */
  noBatches(topic: string): void {
    this.batched.set(topic, false);
  }

  /** The topic's partitions as the stream has them (undefined: not read yet). */
  partitionsFor(topic: string): number | undefined {
    return this.layouts.get(topic);
  }

  /** Reads the stream (on subscribe): its partitions and replicas. */
  async layoutOf(topic: string): Promise<{ partitions: number; replicas: number }> {
    const info = await this.info(topic);
    const partitions = info === undefined ? 1 : partitionsOf(topic, info.config);
    this.layouts.set(topic, partitions);
    if (info !== undefined) this.batched.set(topic, allowsBatches(info.config));
    return { partitions, replicas: info?.config.num_replicas ?? 1 };
  }

  streamFor(topic: string): string {
    return this.shared ? this.config.sharedStream : streamNameFor(topic, this.config.streamPrefix);
  }

  async describe(topic: string, wanted: TopicOptions): Promise<TopicState | undefined> {
    const info = await this.info(topic);
    if (info === undefined || !storesTopic(topic, info.config)) {
      // Ephemeral topics live on core NATS: nothing on the server to describe, always there.
      return wanted.persistence === 'ephemeral' ? { persistence: 'ephemeral', partitions: 1 } : undefined;
    }
    const partitions = partitionsOf(topic, info.config);
    this.layouts.set(topic, partitions);
    this.batched.set(topic, allowsBatches(info.config));
    return stateOf(info, partitions);
  }

  async create(topic: string, options: TopicOptions): Promise<void> {
    if (options.persistence === 'ephemeral') return;
    const wanted = options.partitions ?? 1;
    if (wanted > 1 && this.shared) this.checkPartitionable(topic, wanted);
    if (this.shared) return this.addSubject(topic, options);
    // A server that cannot pin gets a plain stream, and the missing partitions are reported as the mismatch.
    const partitions = this.canPartition ? wanted : 1;
    const config = this.streamConfig(this.streamFor(topic), partitions > 1 ? partitionedSubjects(topic) : [topic], options);
    if (partitions > 1) config.subject_transform = partitionTransform(topic, partitions);
    // Neither changes what a plain publish does; they let publishBatch use the server's batch paths.
    if (this.canBatch) (config as Record<string, unknown>).allow_batched = true;
    if (this.canAtomic) (config as Record<string, unknown>).allow_atomic = true;
    await this.call(topic, 'create', () => this.jsm.streams.add(config), options);
    this.layouts.set(topic, partitions);
    this.batched.set(topic, this.canBatch);
    if (partitions !== wanted) {
      throw new TopicMismatchError(topic, [{ field: 'partitions', wanted, actual: 1 }], `was created with 1 partition: ${NO_PARTITIONS}`);
    }
  }

  private checkPartitionable(topic: string, partitions: number): void {
    if (this.shared) {
      throw new TopicError(ErrorCode.ConfigInvalid, topic, `topic "${topic}" asks for ${partitions} partitions, but streamMode 'shared' keeps every topic in one stream; partitioned topics need streamMode 'perTopic'`);
    }
    if (!this.canPartition) throw new TopicMismatchError(topic, [{ field: 'partitions', wanted: partitions, actual: 1 }], NO_PARTITIONS);
  }

  async update(topic: string, options: TopicOptions, differences: FieldDifference[]): Promise<void> {
    if (differences.some((d) => d.field === 'persistence')) {
      throw new TopicMismatchError(topic, differences.filter((d) => d.field === 'persistence'), 'cannot switch between persistent (a stream) and ephemeral (core NATS)');
    }
    if (this.shared) {
      throw new TopicMismatchError(topic, differences, `is a subject of the shared stream "${this.config.sharedStream}", whose limits apply to every topic in it; change that stream instead`);
    }
    const name = this.streamFor(topic);
    const info = await this.info(topic);
    if (info === undefined) throw new TopicError(ErrorCode.TopicNotFound, topic, `topic "${topic}" (stream ${name}) does not exist`);
    const next = this.limits(options, info.config);
    const repartition = this.repartition(topic, options, info);
    if (repartition !== undefined) next.subject_transform = repartition;
    const replicasWanted = options.replicas !== undefined && options.replicas !== info.config.num_replicas;
    try {
      await this.call(topic, 'update', () => this.jsm.streams.update(name, { ...info.config, ...next }));
      if (next.subject_transform !== undefined) this.layouts.set(topic, options.partitions!);
    } catch (error) {
      // A single server cannot hold replicas: apply the rest and report replicas as the mismatch.
      if (!replicasWanted || !isReplicasRefusal(error)) throw error;
      await this.call(topic, 'update', () => this.jsm.streams.update(name, { ...info.config, ...next, num_replicas: info.config.num_replicas }));
      throw new TopicMismatchError(topic, [{ field: 'replicas', wanted: options.replicas, actual: info.config.num_replicas }], 'cannot change replicas on this server (not clustered)');
    }
  }

  /**
   * A partitioned topic may grow its partitions (the transform changes: new
   * messages of a key may land in another partition than its older ones, so
   * order across the change holds only once those are handled). Fewer
   * partitions, or partitions for a stream made without them, cannot be had.
   */
  private repartition(topic: string, options: TopicOptions, info: StreamInfo) {
    const have = partitionsOf(topic, info.config);
    const want = options.partitions;
    if (want === undefined || want === have) return undefined;
    const difference = [{ field: 'partitions', wanted: want, actual: have }];
    if (want < have) throw new TopicMismatchError(topic, difference, 'cannot have fewer partitions: messages stored in the dropped partitions would never be consumed');
    if (have === 1) {
      throw new TopicMismatchError(topic, difference, 'its stream was made without partitions (subject = topic): create a new topic with partitions, or keep 1 (the pin still keeps one member per group)');
    }
    this.checkPartitionable(topic, want);
    return partitionTransform(topic, want);
  }

  private async info(topic: string): Promise<StreamInfo | undefined> {
    const name = this.streamFor(topic);
    try {
      return await this.jsm.streams.info(name);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return undefined;
      throw adminError(topic, `reading stream ${name}`, error);
    }
  }

  /** Shared mode: the stream holds every topic as a subject; adding one is a read-modify-write, repeated if another bus raced it. */
  private async addSubject(topic: string, options: TopicOptions): Promise<void> {
    const name = this.config.sharedStream;
    for (let attempt = 0; attempt < 10; attempt++) {
      const info = await this.info(topic);
      if (info === undefined) {
        try {
          await this.jsm.streams.add(this.streamConfig(name, [topic], options));
          return;
        } catch (error) {
          if (attempt < 9 && error instanceof JetStreamApiError && /already in use/i.test(error.message)) continue;
          throw adminError(topic, `creating shared stream ${name}`, error);
        }
      }
      const subjects = info.config.subjects ?? [];
      if (subjects.includes(topic)) return;
      try {
        await this.jsm.streams.update(name, { ...info.config, subjects: [...subjects, topic] });
      } catch (error) {
        throw adminError(topic, `adding subject "${topic}" to shared stream ${name}`, error);
      }
      const check = await this.info(topic);
      if (check?.config.subjects?.includes(topic)) return;
    }
    throw new BuslineError(ErrorCode.BrokerUnavailable, `could not add topic "${topic}" to shared stream ${name}: other buses kept changing it`, { retryable: true });
  }

  private streamConfig(name: string, subjects: string[], options: TopicOptions): Partial<StreamConfig> & { name: string } {
    return {
      name,
      subjects,
      retention: RetentionPolicy.Limits,
      storage: this.config.storage === 'memory' ? StorageType.Memory : StorageType.File,
      discard: DiscardPolicy.Old,
      ...this.limits(options),
    };
  }

  /** The stream fields that follow the topic options. */
  private limits(options: TopicOptions, current?: StreamConfig): Partial<StreamConfig> {
    const maxAge = options.retentionMs !== undefined ? nanos(options.retentionMs) : (current?.max_age ?? 0);
    const limits: Partial<StreamConfig> = {
      max_age: maxAge,
      max_msgs: options.maxMessages ?? current?.max_msgs ?? -1,
      max_bytes: options.maxBytes ?? current?.max_bytes ?? -1,
      num_replicas: options.replicas ?? current?.num_replicas ?? 1,
    };
    if (options.description !== undefined) limits.description = options.description;
    const window = nanos(this.config.duplicateWindowMs);
    if (current === undefined) {
      if (window > 0) limits.duplicate_window = maxAge > 0 ? Math.min(window, maxAge) : window;
      else if (maxAge > 0) limits.duplicate_window = Math.min(maxAge, nanos(120_000));
    } else if (maxAge > 0 && current.duplicate_window > maxAge) {
      // The server refuses a duplicate window longer than the retention.
      limits.duplicate_window = maxAge;
    }
    return limits;
  }

  private async call<T>(topic: string, what: string, run: () => Promise<T>, options?: TopicOptions): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (options?.replicas !== undefined && options.replicas > 1 && isReplicasRefusal(error)) {
        throw new TopicMismatchError(topic, [{ field: 'replicas', wanted: options.replicas, actual: 1 }], `cannot be created: this server is not clustered (${errorMessage(error)})`);
      }
      throw adminError(topic, `${what} stream ${this.streamFor(topic)}`, error);
    }
  }
}

function isReplicasRefusal(error: unknown): boolean {
  return (error instanceof JetStreamApiError && error.code === REPLICAS_NOT_SUPPORTED) || /replicas/i.test(errorMessage(error));
}

/** Fast-ingest batches (nats-server ≥ 2.14; nats.js 3.4 does not type the field). */
function allowsBatches(config: StreamConfig): boolean {
  return (config as StreamConfig & { allow_batched?: boolean }).allow_batched === true;
}

/** A stream's config in busline terms (null = unlimited). */
export function stateOf(info: StreamInfo, partitions = 1): TopicState {
  const c = info.config;
  return {
    persistence: 'persistent',
    retentionMs: c.max_age > 0 ? Math.round(c.max_age / nanos(1)) : null,
    maxMessages: c.max_msgs > 0 ? c.max_msgs : null,
    maxBytes: c.max_bytes > 0 ? c.max_bytes : null,
    replicas: c.num_replicas || 1,
    partitions,
    description: c.description ? c.description : null,
  };
}

/** JetStream admin failures as busline errors: unreachable server → BrokerUnavailable, refusals → TopicError. */
export function adminError(topic: string, what: string, error: unknown): BuslineError {
  if (error instanceof BuslineError) return error;
  if (error instanceof JetStreamApiError) {
    return new TopicError(ErrorCode.PublishRejected, topic, `JetStream refused ${what} for topic "${topic}": ${error.message}`, {
      cause: error,
      details: { status: error.status, errCode: error.code },
    });
  }
  return new BrokerUnavailableError(`JetStream did not answer ${what} for topic "${topic}": ${errorMessage(error)}`, error);
}
