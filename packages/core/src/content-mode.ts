/**
 * How busline lays an event out on a message: the two CloudEvents content
 * modes every protocol binding defines.
 *
 * - `binary`: each attribute is a header (`ce_id`, `ce_type`, … on Kafka,
 *   `ce-id`, … elsewhere) and the body is the payload alone. Tools that read
 *   attributes by header name see them; each header costs the producer and
 *   consumer something (kafkajs encodes every record header on its own).
 * - `structured`: the whole event is one JSON object in the body (the
 *   CloudEvents JSON format), with one `content-type:
 *   application/cloudevents+json; charset=utf-8` header. Fewer headers; the
 *   attributes are only in the body.
 *
 * Consumers read both modes whatever a topic writes, so a topic can switch
 * mode while old messages are still stored.
 */
import { z } from 'zod';

/** The content modes, in the order documentation lists them. */
export const CONTENT_MODES = ['binary', 'structured'] as const;
/** `binary` (attributes as headers) or `structured` (the whole event as JSON in the body). */
export type ContentMode = (typeof CONTENT_MODES)[number];

/** The mode written when neither the bus config nor the topic's options set one. */
export const DEFAULT_CONTENT_MODE: ContentMode = 'binary';

/** Validates a content mode, saying what to write instead of a wrong one. */
export const contentModeSchema = z.enum(CONTENT_MODES, {
  error: (issue) =>
    `contentMode must be "binary" (CloudEvents attributes as headers, the payload as the body) or "structured" ` +
    `(the whole event as JSON in the body, one content-type header); got ${JSON.stringify(issue.input) ?? String(issue.input)}`,
});
