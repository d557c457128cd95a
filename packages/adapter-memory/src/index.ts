import type { AdapterModule } from '@busline/core';
import { memoryConfigSchema, type MemoryConfig } from './config.js';
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
  sectionFromUrl(url: URL): Record<string, unknown> {
    return url.hostname ? { broker: url.hostname } : {};
  },
  createDriver(section: MemoryConfig): MemoryDriver {
    return new MemoryDriver(section);
  },
};
