import type {} from '@busline/core'; // the module AdapterConfigs is augmented in, below
import type { AdapterModule } from '@busline/core/driver';
import { memoryConfigSchema, type MemoryConfig, type MemoryConfigInput } from './config.js';
import { MemoryDriver } from './memory-driver.js';

export {
  memoryConfigSchema,
  DEFAULT_BROKER_NAME,
  DEFAULT_DEDUPE_WINDOW_MS,
  DEFAULT_DELIVERY_BATCH_SIZE,
  type MemoryConfig,
  type MemoryConfigInput,
} from './config.js';
export {
  MemoryBroker,
  getMemoryBroker,
  dropMemoryBroker,
  hashKey,
  DEDUPE_HEADER,
  EPHEMERAL_PENDING_LIMIT,
  type MemoryBrokerOptions,
  type MemberOptions,
  type MemorySubscription,
  type PublishSettings,
  type TopicStats,
  type GroupStats,
} from './memory-broker.js';
export { MemoryDriver, MEMORY_CAPABILITIES } from './memory-driver.js';

/** Loaded by core's `createEventBus` for `type: 'memory'` / `memory://[broker]`. */
export const adapter: AdapterModule<MemoryConfig> = {
  type: 'memory',
  configSchema: memoryConfigSchema,
  /** `memory://` is the default broker; `memory://name` a named one (two buses on one name talk). */
  sectionFromUrl(url: string): Record<string, unknown> {
    const name = url.replace(/^memory:\/\//i, '').replace(/[/?#].*$/, '');
    return name ? { broker: name } : {};
  },
  createDriver(section: MemoryConfig): MemoryDriver {
    return new MemoryDriver(section);
  },
};

/** Types the `memory` section of `createEventBus`'s config (see core's AdapterConfigs). */
declare module '@busline/core' {
  interface AdapterConfigs {
    memory: MemoryConfigInput;
  }
}
