export * from './errors.js';
export * from './topic.js';
export * from './envelope.js';
export * from './envelope-encoding.js';
export * from './envelope-decoding.js';
export * from './cloudevents-binding.js';
export * from './content-mode.js';
export { STRUCTURED_JSON_CONTENT_TYPE } from './cloudevents-structured.js';
export { foreignEnvelope, foreignPayload } from './foreign-message.js';
export * from './driver.js';
export * from './retry.js';
export * from './topic-provisioner.js';
export * from './keyed-ordering-pool.js';
export * from './ack-watermark.js';
export * from './metrics.js';
export * from './events.js';
export * from './config.js';
export * from './subscription.js';
export * from './subscribe-options.js';
export * from './dead-letter.js';
export * from './delivery-inlet.js';
export * from './publish-admission.js';
export * from './event-bus.js';
export type { BatchItem, BatchOptions, BatchResult } from './batch-publish.js';
export * from './create-event-bus.js';
export * from './json-payload.js';
export {
  defineEvent,
  isEventDefinition,
  PayloadError,
  type EventDefinition,
  type EventDefinitionInput,
  type EventHandler,
  type EventInput,
  type EventPayload,
  type EventPublishOptions,
  type PayloadIssue,
  type Upcaster,
} from './typed-event.js';
export * from './logger.js';
export * from './health.js';
export * from './metrics-recorder.js';
export * from './publish-outcomes.js';
