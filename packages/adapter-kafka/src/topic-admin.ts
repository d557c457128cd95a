/**
 * Topic provisioning on Kafka: what core's TopicProvisioner asks of the
 * driver, mapped onto the admin API.
 *
 * | busline option | Kafka                                                   |
 * | -------------- | ------------------------------------------------------- |
 * | partitions     | partition count (can only grow)                         |
 * | replicas       | replication factor (not changed by this adapter)        |
 * | retentionMs    | `retention.ms` (-1 = unlimited → null)                  |
 * | maxBytes       | `retention.bytes` — per partition on Kafka, enforced per log segment |
 * | maxMessages    | not representable: never reported, never set           |
 * | description    | not representable: never reported, never set           |
 * | persistence    | "ephemeral" = retention ≤ `ephemeralRetentionMs`, consumers start at the end |
 */
import {
  BuslineError,
  ErrorCode,
  TopicError,
  TopicMismatchError,
  type FieldDifference,
  type TopicOptions,
  type TopicState,
} from '@busline/core/driver';
import kafkajs, { type Admin, type IResourceConfig } from 'kafkajs';
import type { KafkaConfig } from './config.js';
import { kafkaError, protocolType } from './kafka-errors.js';
import { triesUntil } from './tries-until.js';

const { ConfigResourceTypes } = kafkajs;

/** DescribeConfigs `configSource` of settings made on the topic itself (not defaults). */
const TOPIC_CONFIG_SOURCE = 1;

/** One setting as DescribeConfigs gives it. */
interface ConfigEntry {
  configName: string;
  configValue: string | null;
  configSource?: number;
  isSensitive?: boolean;
}

/**
 * Describes, creates, updates and deletes Kafka topics through the kafkajs admin client, mapping
 * busline topic options to partitions, replication and topic configs.
 */
export class TopicAdmin {
  private brokerDefaults: Promise<{ partitions: number; replicationFactor: number }> | undefined;

  constructor(
    private readonly admin: Admin,
    private readonly defaults: KafkaConfig['topics'],
  ) {}

  /**
   * What the broker has for `topic` (undefined when it does not exist), as far as Kafka can
   * represent `wanted`.
   */
  async describe(topic: string, wanted: TopicOptions): Promise<TopicState | undefined> {
    const partitions = await this.partitions(topic);
    if (partitions === undefined) return undefined;
    const configs = await this.configs(topic);
    const retention = parseLimit(configs.get('retention.ms'));
    const bytes = parseLimit(configs.get('retention.bytes'));
    const state: TopicState = {
      partitions: partitions.length,
      replicas: partitions[0]?.replicas.length ?? 0,
      retentionMs: retention,
      maxBytes: bytes,
      persistence:
        wanted.persistence === 'ephemeral' && retention !== null && retention !== undefined && retention <= this.defaults.ephemeralRetentionMs
          ? 'ephemeral'
          : 'persistent',
    };
    if (retention === undefined) delete state.retentionMs;
    if (bytes === undefined) delete state.maxBytes;
    return state;
  }

  /**
   * Creates `topic` with `options`; partitions and replicas the options leave open come from the
   * adapter's defaults, else the broker's.
   */
  async create(topic: string, options: TopicOptions): Promise<void> {
    const broker = options.partitions === undefined || options.replicas === undefined ? await this.defaultsOfBroker() : undefined;
    const numPartitions = options.partitions ?? this.defaults.partitions ?? broker!.partitions;
    const replicationFactor = options.replicas ?? this.defaults.replicationFactor ?? broker!.replicationFactor;
    const configEntries: { name: string; value: string }[] = [];
    const retentionMs = options.retentionMs ?? (options.persistence === 'ephemeral' ? this.defaults.ephemeralRetentionMs : undefined);
    if (retentionMs !== undefined) configEntries.push({ name: 'retention.ms', value: String(retentionMs) });
    if (options.maxBytes !== undefined) configEntries.push({ name: 'retention.bytes', value: String(options.maxBytes) });
    try {
      // kafkajs's own waitForLeaders gives up when a KRaft broker briefly answers
      // UNKNOWN_TOPIC_OR_PARTITION for a topic it just created: wait here instead.
      const created = await this.admin.createTopics({
        topics: [{ topic, numPartitions, replicationFactor, configEntries }],
        waitForLeaders: false,
      });
      if (!created) return;
    } catch (error) {
      // Another process creates it right now: wait as for our own, so a subscribe that follows finds it.
      if (allErrorsAre(error, 'TOPIC_ALREADY_EXISTS')) return this.waitForLeaders(topic, 1);
      throw kafkaError(error, `creating Kafka topic "${topic}" (${numPartitions} partitions, replication factor ${replicationFactor})`, ErrorCode.TopicInvalid);
    }
    await this.waitForLeaders(topic, numPartitions);
  }

  /** Resolves once every partition of a new topic has a leader (bounded; a slow one is left to the clients' retries). */
  private async waitForLeaders(topic: string, partitions: number, timeoutMs = 15_000): Promise<void> {
    for await (const _ of triesUntil(timeoutMs)) {
      const found = await this.partitions(topic).catch(() => undefined);
      if (found && found.length >= partitions && found.every((p) => p.leader >= 0)) return;
    }
  }

  /**
   * Brings an existing topic towards `options`; throws TopicMismatchError for what Kafka cannot
   * change (fewer partitions, replication).
   */
  async update(topic: string, options: TopicOptions, differences: FieldDifference[]): Promise<void> {
    const refused: FieldDifference[] = [];
    let grow: number | undefined;
    const set = new Map<string, string | null>();
    for (const d of differences) {
      switch (d.field) {
        case 'partitions':
          if (typeof d.wanted === 'number' && typeof d.actual === 'number' && d.wanted > d.actual) grow = d.wanted;
          else refused.push(d);
          break;
        case 'replicas':
          refused.push(d);
          break;
        case 'retentionMs':
          set.set('retention.ms', options.retentionMs === undefined ? null : String(options.retentionMs));
          break;
        case 'maxBytes':
          set.set('retention.bytes', options.maxBytes === undefined ? null : String(options.maxBytes));
          break;
        case 'persistence':
          if (options.retentionMs === undefined) {
            set.set('retention.ms', options.persistence === 'ephemeral' ? String(this.defaults.ephemeralRetentionMs) : null);
          }
          break;
        default:
          refused.push(d);
      }
    }
    if (grow !== undefined) {
      try {
        await this.admin.createPartitions({ topicPartitions: [{ topic, count: grow }] });
      } catch (error) {
        throw kafkaError(error, `adding partitions to Kafka topic "${topic}"`, ErrorCode.TopicMismatch);
      }
    }
    if (set.size > 0) await this.alter(topic, set);
    if (refused.length > 0) throw new TopicMismatchError(topic, refused, 'cannot be changed this way on Kafka (partitions only grow; the replication factor is not changed by busline)');
  }

  /**
   * AlterConfigs replaces a topic's whole configuration, so the settings
   * already made on the topic are read and sent back with the changes
   * (`null` removes a setting, back to the broker default).
   */
  private async alter(topic: string, changes: Map<string, string | null>): Promise<void> {
    const entries = ownSettings(await this.describeConfigs(topic, undefined));
    for (const [name, value] of changes) {
      if (value === null) entries.delete(name);
      else entries.set(name, value);
    }
    const resource: IResourceConfig = {
      type: ConfigResourceTypes.TOPIC,
      name: topic,
      configEntries: [...entries].map(([name, value]) => ({ name, value })),
    };
    try {
      await this.admin.alterConfigs({ validateOnly: false, resources: [resource] });
    } catch (error) {
      throw kafkaError(error, `changing the configuration of Kafka topic "${topic}"`, ErrorCode.TopicMismatch);
    }
    await this.waitForConfigs(topic, changes);
  }

  /**
   * Resolves once the broker describes the topic with `changes` applied (bounded, as waitForLeaders).
   * A KRaft broker answers AlterConfigs once the controller committed the change, and applies it to
   * what it describes a moment later: without this wait a check right after an update (the caller's,
   * or the next configureTopic) could still read the old value. Past the bound it returns: the broker
   * accepted the change, and a check that still reads the old value reports it.
   */
  private async waitForConfigs(topic: string, changes: Map<string, string | null>, timeoutMs = 10_000): Promise<void> {
    for await (const _ of triesUntil(timeoutMs)) {
      const entries = await this.describeConfigs(topic, [...changes.keys()]).catch(() => undefined);
      if (entries === undefined) continue;
      const own = ownSettings(entries);
      // A removed setting (null) is back to the broker's default: no longer the topic's own.
      if ([...changes].every(([name, value]) => own.get(name) === (value ?? undefined))) return;
    }
  }

  /** Deletes `topics` (nothing for an empty list). */
  async delete(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.admin.deleteTopics({ topics });
  }

  /**
   * The topic's effective `max.message.bytes` (its own setting or the
   * broker's), null when the broker does not say, or undefined when the topic
   * does not exist. One DescribeConfigs request: a missing topic is answered
   * at once, without the client's metadata retries.
   */
  async producerLimit(topic: string): Promise<number | null | undefined> {
    try {
      const entries = await this.describeConfigs(topic, ['max.message.bytes']);
      const value = Number(entries.find((e) => e.configName === 'max.message.bytes')?.configValue);
      return Number.isFinite(value) && value > 0 ? value : null;
    } catch (error) {
      // Kafka answers a missing topic in the resource, or (KRaft) as the request's error.
      if ((error instanceof TopicError && error.code === ErrorCode.TopicNotFound) || protocolType(error) === 'UNKNOWN_TOPIC_OR_PARTITION') return undefined;
      throw error;
    }
  }

  /** The topic's partitions, or undefined when it does not exist. */
  private async partitions(topic: string): Promise<{ partitionId: number; leader: number; replicas: number[] }[] | undefined> {
    try {
      const { topics } = await this.admin.fetchTopicMetadata({ topics: [topic] });
      const found = topics.find((t) => t.name === topic);
      return found && found.partitions.length > 0 ? found.partitions : undefined;
    } catch (error) {
      if (protocolType(error) === 'UNKNOWN_TOPIC_OR_PARTITION') return undefined;
      throw kafkaError(error, `reading the metadata of Kafka topic "${topic}"`);
    }
  }

  private async configs(topic: string): Promise<Map<string, string | null>> {
    const entries = await this.describeConfigs(topic, ['retention.ms', 'retention.bytes']);
    return new Map(entries.map((e) => [e.configName, e.configValue]));
  }

  private async describeConfigs(
    topic: string,
    names: string[] | undefined,
  ): Promise<ConfigEntry[]> {
    try {
      const { resources } = await this.admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, ...(names ? { configNames: names } : {}) }],
        includeSynonyms: false,
      });
      const resource = resources[0];
      if (!resource) return [];
      if (resource.errorCode !== 0) {
        if (resource.errorCode === 3) throw new TopicError(ErrorCode.TopicNotFound, topic, `Kafka topic "${topic}" does not exist`);
        throw new BuslineError(ErrorCode.BrokerUnavailable, `describing Kafka topic "${topic}": ${resource.errorMessage ?? `error ${resource.errorCode}`}`);
      }
      return resource.configEntries as ConfigEntry[];
    } catch (error) {
      throw kafkaError(error, `reading the configuration of Kafka topic "${topic}"`);
    }
  }

  /** num.partitions and default.replication.factor of the cluster (read once). */
  private defaultsOfBroker(): Promise<{ partitions: number; replicationFactor: number }> {
    this.brokerDefaults ??= (async () => {
      const cluster = await this.admin.describeCluster();
      const broker = cluster.brokers[0];
      if (!broker) throw new BuslineError(ErrorCode.BrokerUnavailable, 'the Kafka cluster reports no brokers');
      const { resources } = await this.admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.BROKER, name: String(broker.nodeId), configNames: ['num.partitions', 'default.replication.factor'] }],
        includeSynonyms: false,
      });
      const entries = new Map((resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]));
      const partitions = Number(entries.get('num.partitions') ?? 1);
      const replicationFactor = Number(entries.get('default.replication.factor') ?? 1);
      return {
        partitions: Number.isInteger(partitions) && partitions > 0 ? partitions : 1,
        replicationFactor: Number.isInteger(replicationFactor) && replicationFactor > 0 ? replicationFactor : 1,
      };
    })().catch((error: unknown) => {
      this.brokerDefaults = undefined;
      throw kafkaError(error, 'reading the Kafka broker defaults (num.partitions, default.replication.factor)');
    });
    return this.brokerDefaults;
  }
}

/** The settings made on the topic itself (not defaults, not sensitive ones), by name. */
function ownSettings(entries: ConfigEntry[]): Map<string, string> {
  const own = new Map<string, string>();
  for (const entry of entries) {
    if (entry.configSource === TOPIC_CONFIG_SOURCE && entry.configValue !== null && !entry.isSensitive) own.set(entry.configName, entry.configValue);
  }
  return own;
}

/** A Kafka limit: -1 means unlimited (null); absent stays undefined. */
function parseLimit(value: string | null | undefined): number | null | undefined {
  if (value === undefined || value === null) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) return undefined;
  return n < 0 ? null : n;
}

function allErrorsAre(error: unknown, type: string): boolean {
  const errors = (error as { errors?: { type?: string }[] } | undefined)?.errors;
  if (Array.isArray(errors) && errors.length > 0) return errors.every((e) => e.type === type);
  return protocolType(error) === type;
}
