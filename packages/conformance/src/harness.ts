/**
 * The per-run state the tests share: the adapter's options, its resolved
 * capabilities, the buses a test opened (closed after each test), and
 * deadline scaling for slow brokers.
 */
import type { BusConfigInput, ContentMode, Driver, DriverCapabilities, EventBus, TopicOptionsInput } from '@busline/core';
import { uniqueName } from './helpers.js';

/** The bus config fields the suite sets; an adapter's `createBus` merges them into its own config. */
export interface BusConfigLike {
  /** Default consumer group of the bus (the suite passes a unique one per bus). */
  group: string;
  topicStrategy: 'createOnly' | 'createOrUpdate' | 'validateOnly' | 'skip';
  onMismatch: 'warn' | 'fail' | 'ignore';
  /** Topics ensured at `start()`. */
  topics: Record<string, TopicOptionsInput>;
  /** How events are laid out on messages (CloudEvents binary or structured content mode). */
  contentMode: ContentMode;
  /** Handlers running at once across the bus. */
  concurrency: number;
  publish: { timeoutMs?: number; maxInFlight?: number; maxWaiting?: number };
  /** Appended to a topic's name to name its dead-letter topic; false: no dead letters by default. */
  deadLetterSuffix: string | false;
  retry: BusConfigInput['retry'];
  logger: BusConfigInput['logger'];
  health: BusConfigInput['health'];
  telemetry: BusConfigInput['telemetry'];
}

/** Optional driver methods a test may need. */
export type DriverMethodName = 'describeBacklog';

/**
 * What an adapter's test file gives the conformance suite: how to make buses on its broker, and the
 * optional hooks some tests need.
 */
export interface ConformanceOptions {
  /** Shown in test names and the throughput line, e.g. 'memory'. */
  name: string;
  /**
   * Returns a NEW bus on the same broker each call, started or not (the suite
   * calls `start()` and closes every bus it made). Merge `overrides` into the
   * config; the suite passes deliberately invalid values to test config
   * validation, so pass them through unchanged.
   */
  createBus(overrides?: Partial<BusConfigLike>): Promise<EventBus>;
  /** Overrides of what `bus.capabilities` declares (e.g. to skip a feature while it is being built). */
  capabilities?: Partial<DriverCapabilities>;
  hooks?: {
    /** Restarts the broker process and resolves once it accepts connections again. */
    restartBroker?(): Promise<void>;
  };
  /**
   * Called once after the suite with every topic name it made (some may not
   * exist: not every test creates its dead-letter topic), so a run on a
   * shared broker deletes what it created.
   */
  cleanup?(created: { topics: string[] }): Promise<void>;
  /**
   * Registers only the tests whose names match (the rest are not registered
   * at all). Lets an adapter run, say, the broker-restart test on a private
   * server it may restart, beside the full suite on a shared one.
   */
  only?: RegExp;
  /**
   * The most bytes (body plus headers) the broker accepts in one message, for
   * the tests of messages at the limit. Default 1 MiB (NATS max_payload and the
   * in-memory broker's default; Kafka's message.max.bytes is a little more).
   */
  maxMessageBytes?: number;
  /**
   * A bus whose broker hands a delivered, unsettled message out again after
   * `ms` (NATS: a short ack_wait), for the tests of messages held longer than
   * the broker's deadline. Adapters without such a deadline leave it out (the
   * tests then run on an ordinary bus).
   */
  deadline?: {
    ms: number;
    /** Makes a bus with that deadline, `overrides` applied to its config. */
    createBus(overrides?: Partial<BusConfigLike>): Promise<EventBus>;
  };
  /**
   * How a member process reaches the broker: the bus config (JSON) and, where
   * core cannot load the adapter by type, its module URL. Enables the tests
   * with members in processes of their own (kill -9, SIGTERM restarts).
   */
  memberProcess?: { config: Record<string, unknown>; adapterModule?: string };
  /** Multiplies every deadline (Kafka: ~3). Default 1. */
  timeoutScale?: number;
  /** Lowest acceptable msg/s for publish and end to end; only catches collapse. Default 200. */
  throughputFloor?: number;
  messageCount?: {
    /** Messages in the per-key order test, spread over 1,000 keys. Default 5,000. */
    order?: number;
    /** Messages in the throughput test. Default 20,000. */
    throughput?: number;
  };
}

/** The name of one capability flag an adapter declares (`DriverCapabilities`). */
export type CapabilityName = keyof DriverCapabilities;

/**
 * What a conformance test needs to run; a test whose needs are not met is skipped with the reason
 * shown.
 */
export interface TestSpec {
  /** Skipped (with the reason shown) unless the adapter declares each of these. */
  requires?: CapabilityName[];
  /** Skipped unless the adapter declares none of these. */
  requiresNot?: CapabilityName[];
  /** Skipped unless these hooks were given. */
  hooks?: (keyof NonNullable<ConformanceOptions['hooks']>)[];
  /** Skipped unless `memberProcess` was given. */
  memberProcess?: boolean;
  /** Skipped unless the adapter's driver implements these optional methods. */
  driverMethods?: DriverMethodName[];
  /** Test timeout before scaling; default 30 s. */
  timeoutMs?: number;
}

/**
 * Shared state of one conformance run: the adapter's capabilities, unique topic and group names,
 * and every bus a test made (closed after it).
 */
export class Harness {
  /** Filled in by `beforeAll` from a probe bus plus the caller's overrides. */
  caps!: DriverCapabilities;
  /** The optional driver methods the adapter implements (from the probe bus). */
  driverMethods = new Set<DriverMethodName>();
  private readonly open = new Set<EventBus>();
  readonly busErrors: { error: Error; context: string }[] = [];

  constructor(readonly options: ConformanceOptions) {}

  /** The broker's message size limit the size tests use (`maxMessageBytes`, default 1 MiB). */
  get maxMessageBytes(): number {
    return this.options.maxMessageBytes ?? 1024 * 1024;
  }

  /** What every deadline is multiplied by (`timeoutScale`, default 1). */
  get scale(): number {
    return this.options.timeoutScale ?? 1;
  }

  /** A deadline scaled for the adapter. */
  ms(base: number): number {
    return Math.round(base * this.scale);
  }

  /** Every topic name the suite made, for `cleanup` (dead-letter topics included). */
  readonly topics = new Set<string>();

  /** A topic name unique to this run, so tests never see each other's messages. */
  topic(label: string): string {
    const name = uniqueName(label);
    this.topics.add(name);
    this.topics.add(`${name}.dlq`);
    return name;
  }

  /** A group name unique to this run. */
  group(label: string): string {
    return uniqueName(label);
  }

  /**
   * Learns the adapter's capabilities from a probe bus (plus the caller's overrides) before any
   * test runs.
   */
  async resolveCapabilities(): Promise<void> {
    const bus = await this.options.createBus({ group: this.group('probe') });
    try {
      // Some capabilities depend on the broker the bus connects to (e.g. its server version).
      await bus.start();
      this.caps = { ...bus.capabilities, ...this.options.capabilities };
      const driver: Driver = bus.driver;
      if (typeof driver.describeBacklog === 'function') this.driverMethods.add('describeBacklog');
    } finally {
      await bus.close();
    }
  }

  /**
   * Creates a bus through the adapter's factory, starts it (unless `start: false`), and
   * closes it after the test.
   */
  async bus(overrides: Partial<BusConfigLike> = {}, options: { start?: boolean; deadline?: boolean } = {}): Promise<EventBus> {
    const create = options.deadline && this.options.deadline ? this.options.deadline.createBus : this.options.createBus;
    const bus = await create({ group: this.group('svc'), ...overrides });
    this.open.add(bus);
    bus.on('error', (error: Error, context: string) => {
      this.busErrors.push({ error, context });
    });
    if (options.start !== false) await bus.start();
    return bus;
  }

  /** Closes a bus the test made (the suite's `afterEach` then leaves it alone). */
  async close(bus: EventBus, options?: { timeoutMs?: number }): Promise<void> {
    this.open.delete(bus);
    await bus.close(options);
  }

  /** Closes every bus the current test made; rejects when one fails to close. */
  async closeAll(): Promise<void> {
    const buses = [...this.open];
    this.open.clear();
    this.busErrors.length = 0;
    const results = await Promise.allSettled(buses.map((bus) => bus.close({ timeoutMs: this.ms(10_000) })));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length) throw new AggregateError(failed.map((f) => f.reason as unknown), `${failed.length} bus(es) failed to close`);
  }

  /**
   * Declares a test; it is skipped, with the reason, when the adapter lacks
   * what it needs. Definitions are data: a runner binding (`bindConformance`)
   * turns them into that runner's tests.
   */
  test(name: string, spec: TestSpec, fn: () => Promise<void>): void {
    if (this.options.only && !this.options.only.test(name)) return;
    const gates = [
      ...(spec.requires ?? []).map((c) => `requires ${c}`),
      ...(spec.requiresNot ?? []).map((c) => `requires !${c}`),
      ...(spec.hooks ?? []).map((hook) => `requires hooks.${hook}`),
      ...(spec.memberProcess ? ['requires memberProcess'] : []),
      ...(spec.driverMethods ?? []).map((m) => `requires driver.${m}`),
    ];
    const title = gates.length ? `${name} [${gates.join(', ')}]` : name;
    this.collected?.push({
      title,
      timeoutMs: this.ms(spec.timeoutMs ?? 30_000),
      skipReason: () => this.skipReason(spec),
      run: fn,
    });
  }

  /** Why a test cannot run on this adapter, or undefined when it can. */
  private skipReason(spec: TestSpec): string | undefined {
    for (const cap of spec.requires ?? []) if (!this.caps[cap]) return `adapter ${this.options.name} does not declare capability ${cap}`;
    for (const cap of spec.requiresNot ?? []) if (this.caps[cap]) return `adapter ${this.options.name} declares capability ${cap}`;
    for (const hook of spec.hooks ?? []) if (!this.options.hooks?.[hook]) return `no hooks.${hook} given for ${this.options.name}`;
    for (const method of spec.driverMethods ?? []) if (!this.driverMethods.has(method)) return `the ${this.options.name} driver has no ${method}()`;
    if (spec.memberProcess && !this.options.memberProcess) return `no memberProcess given for ${this.options.name} (an in-process broker has no other processes)`;
    return undefined;
  }

  private collected: ConformanceTest[] | undefined;

  /** Runs `register` and returns the tests it declared. */
  collect(register: () => void): ConformanceTest[] {
    this.collected = [];
    try {
      register();
      return this.collected;
    } finally {
      this.collected = undefined;
    }
  }
}

/** One conformance test, as data, for any runner. */
export interface ConformanceTest {
  /** The name, with the capabilities it needs in brackets. */
  title: string;
  timeoutMs: number;
  /** Asked when the test is about to run (capabilities are known then). */
  skipReason(): string | undefined;
  /** Runs the test; rejects when a promise is broken. */
  run(): Promise<void>;
}
