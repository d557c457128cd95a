/**
 * `@busline/core/driver`: what an adapter author needs, apart from the
 * application API (`@busline/core`). The driver contract a broker adapter
 * implements, the errors it reports outcomes with, AckWatermark for brokers
 * that acknowledge cumulatively, Deque for their queues, and the topic and
 * envelope vocabulary.
 * Everything an adapter would otherwise rebuild (in-flight budget, settle
 * once, lease extension, collapsing redelivered copies, retries, dead
 * letters, the publish window) is core's, in front of the driver.
 */
export * from './driver.js';
export * from './errors.js';
export * from './topic.js';
export { AckWatermark } from './ack-watermark.js';
export { CloseDeadline } from './close-deadline.js';
export { Deque } from './deque.js';
export { Header } from './envelope-encoding.js';
export { HTTP_BINDING, KAFKA_BINDING, type CloudEventsBinding, type CloudEventsHeaders } from './cloudevents-binding.js';
export { redactSecrets, type Logger } from './logger.js';
