/**
 * TopicRegistry: the bus's topics as publishing and subscribing both see
 * them — the options declared for each (`config.topics`, `configureTopic`),
 * the names already checked (each is validated once, not on every publish),
 * and the one-time ensure on first use through the TopicProvisioner. It is
 * the PublishPipeline's host, so the publish path reaches it without a hop
 * through the bus.
 */
import type { BusConfig } from './config.js';
import type { ContentMode } from './content-mode.js';
import { BuslineError, ErrorCode } from './errors.js';
import type { PublishPipelineHost } from './publish-pipeline.js';
import type { TopicProvisioner } from './topic-provisioner.js';
import { assertTopicName, topicOptionsSchema, type TopicOptions, type TopicOptionsInput } from './topic.js';

const DEFAULT_TOPIC: TopicOptions = topicOptionsSchema.parse({});

/** Declared topic options, checked topic names and the ensure-once of a topic, for one bus. */
export class TopicRegistry implements PublishPipelineHost {
  private readonly topicOptions = new Map<string, TopicOptions>();
  private readonly validTopics = new Set<string>();

  constructor(
    private readonly provisioner: TopicProvisioner,
    private readonly config: Pick<BusConfig, 'topics' | 'contentMode'>,
  ) {
    for (const [topic, options] of Object.entries(config.topics)) this.topicOptions.set(topic, options);
  }

  /** The declared topics in declaration order; live, so start() also ensures those declared while it runs. */
  get declared(): ReadonlyMap<string, TopicOptions> {
    return this.topicOptions;
  }

  /** Checks the name and options (CONFIG_INVALID) and records them for later publishes and subscriptions. */
  declare(topic: string, options: TopicOptionsInput): TopicOptions {
    this.checkTopic(topic);
    const parsed = topicOptionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new BuslineError(ErrorCode.ConfigInvalid, `invalid options for topic "${topic}": ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    this.topicOptions.set(topic, parsed.data);
    return parsed.data;
  }

  optionsOf(topic: string): TopicOptions {
    return this.topicOptions.get(topic) ?? DEFAULT_TOPIC;
  }

  /** How events are written to `topic`: its own `contentMode`, else the bus's. */
  contentModeOf(topic: string): ContentMode {
    return this.topicOptions.get(topic)?.contentMode ?? this.config.contentMode;
  }

  checkTopic(topic: string): void {
    if (this.validTopics.has(topic)) return;
    assertTopicName(topic);
    this.validTopics.add(topic);
  }

  ensureTopic(topic: string): Promise<unknown> | undefined {
    if (this.provisioner.isEnsured(topic)) return undefined;
    return this.provisioner.ensure(topic, this.optionsOf(topic));
  }
}
