/**
 * @busline/adapter-nats — NATS JetStream for busline.
 *
 * ```ts
 * import { createEventBus } from '@busline/core';
 * const bus = await createEventBus({ url: 'nats://127.0.0.1:4222', group: 'billing' });
 * ```
 */
import type {} from '@busline/core'; // the module AdapterConfigs is augmented in, below
import type { AdapterModule } from '@busline/core/driver';
import { natsConfigSchema, sectionFromUrl, type NatsConfig, type NatsConfigInput } from './config.js';
import { NatsDriver } from './driver.js';

export { NatsDriver, NATS_CAPABILITIES } from './driver.js';
export { MINIMUM_SERVER, PINNING_SERVER } from './server-version.js';
export {
  natsConfigSchema,
  sectionFromUrl,
  sectionFromUrlString,
  DEFAULT_PUBLISH_WINDOW,
  DEFAULT_PUBLISH_RESEND_MS,
  DEFAULT_PULL_BATCH,
  DEFAULT_PULL_EXPIRES_MS,
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_DUPLICATE_WINDOW_MS,
  type NatsConfig,
  type NatsConfigInput,
} from './config.js';
export { streamNameFor, durableNameFor } from './names.js';
export { redactServer } from './connection.js';
export { stateOf } from './streams.js';
export { CumulativeAcks } from './cumulative-acks.js';

/**
 * The adapter module `createEventBus` loads for `type: 'nats'` / `nats://`; pass it as `{ adapter
 * }` when the package cannot be imported by name (bundled apps).
 */
export const adapter: AdapterModule<NatsConfig> = {
  type: 'nats',
  configSchema: natsConfigSchema,
  sectionFromUrl,
  createDriver: (section: NatsConfig) => new NatsDriver(section),
};

export default adapter;

/** Types the `nats` section of `createEventBus`'s config (see core's AdapterConfigs). */
declare module '@busline/core' {
  interface AdapterConfigs {
    nats: NatsConfigInput;
  }
}
