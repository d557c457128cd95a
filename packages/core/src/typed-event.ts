/**
 * Typed events: an event is defined once (name, version, payload schema) and
 * `bus.publish(Event, payload)` / `bus.subscribe(Event, handler)` are typed
 * from the schema and validate on both sides. Any Standard Schema works
 * (zod ≥ 3.24, valibot ≥ 1, arktype ≥ 2, ...): busline calls the schema's
 * `~standard.validate` and never imports a schema library itself.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { EnvelopeOptions } from './envelope.js';
import { BuslineError, ErrorCode } from './errors.js';
import type { EnvelopeContext, EnvelopeHandler } from './subscription.js';
import { assertTopicName } from './topic.js';

/**
 * Turns the payload of version `n` into the payload of version `n + 1`
 * (the parameter may be typed with the old shape: it is not checked).
 */
export type Upcaster = (payload: never) => unknown;

/** What `defineEvent` takes: the event's name, payload schema, version and upcasters. */
export interface EventDefinitionInput<S extends StandardSchemaV1> {
  /** The envelope `type` (CloudEvents `type`), e.g. `order.placed`. */
  name: string;
  /** The current version of the payload shape; published in the envelope's `version`. Default 1. */
  version?: number;
  /** Validates (and may transform) the payload on publish and on consume. */
  schema: S;
  /** The topic it travels on; default: `name`. */
  topic?: string;
  /**
   * Upcasters keyed by the version they read: `{ 1: (v1) => v2 }`. A message
   * of an older version goes through each step up to `version`, then the schema.
   */
  upcast?: Readonly<Record<number, Upcaster>>;
}

/** An event defined with `defineEvent`. */
export interface EventDefinition<S extends StandardSchemaV1 = StandardSchemaV1> {
  /** The envelope `type` of the event. */
  readonly name: string;
  /** The payload shape version publishes carry. */
  readonly version: number;
  /** The topic the event travels on. */
  readonly topic: string;
  /** Validates the payload on publish and consume. */
  readonly schema: S;
  /** Steps from older versions, keyed by the version each reads. */
  readonly upcast: Readonly<Record<number, Upcaster>>;
}

/** What `publish(Event, payload)` takes: the schema's input type. */
export type EventInput<E extends EventDefinition> = StandardSchemaV1.InferInput<E['schema']>;
/** What a handler of `subscribe(Event, handler)` gets: the schema's output type. */
export type EventPayload<E extends EventDefinition> = StandardSchemaV1.InferOutput<E['schema']>;
/** Publish options of a typed event: its name and version come from the definition. */
export type EventPublishOptions = Omit<EnvelopeOptions, 'type' | 'version'> & { timeoutMs?: number };

/**
 * Defines an event once for publishers and subscribers:
 *
 * ```ts
 * const OrderPlaced = defineEvent({ name: 'order.placed', version: 2, topic: 'orders', schema: z.object({ orderId: z.string(), total: z.number() }),
 *   upcast: { 1: (v1: { orderId: string; amount: number }) => ({ orderId: v1.orderId, total: v1.amount }) } });
 * await bus.publish(OrderPlaced, { orderId: 'o-1', total: 12 });
 * await bus.subscribe(OrderPlaced, (order) => ship(order.orderId));
 * ```
 */
export function defineEvent<S extends StandardSchemaV1>(input: EventDefinitionInput<S>): EventDefinition<S> {
  const { name, schema, upcast = {} } = input;
  const version = input.version ?? 1;
  const problems: string[] = [];
  if (typeof name !== 'string' || name.length === 0 || name.length > 256 || /[\r\n\0]/.test(name)) {
    problems.push('name: must be 1 to 256 characters without CR, LF or NUL');
  }
  if (!Number.isInteger(version) || version < 1) problems.push(`version: must be an integer >= 1, got ${String(version)}`);
  if (typeof schema?.['~standard']?.validate !== 'function') {
    problems.push('schema: must be a Standard Schema (zod, valibot, arktype, ...): it has no ~standard.validate');
  }
  for (const [from, step] of Object.entries(upcast)) {
    const n = Number(from);
    if (!Number.isInteger(n) || n < 1 || n >= version) problems.push(`upcast.${from}: upcasters read versions 1 to ${version - 1} (the current version is ${version})`);
    if (typeof step !== 'function') problems.push(`upcast.${from}: must be a function`);
  }
  if (problems.length > 0) {
    throw new BuslineError(ErrorCode.ConfigInvalid, `invalid event definition ${JSON.stringify(name)}: ${problems.join('; ')}`);
  }
  const topic = input.topic ?? name;
  assertTopicName(topic);
  return Object.freeze({ name, version, topic, schema, upcast: Object.freeze({ ...upcast }) });
}

/** True for an event made by `defineEvent` (anything with a Standard Schema as `schema`). */
export function isEventDefinition(value: unknown): value is EventDefinition {
  return typeof value === 'object' && value !== null && typeof (value as EventDefinition).schema?.['~standard']?.validate === 'function';
}

/** One bad field of a payload: where (`items.0.sku`, or `(payload)` for the whole) and why. */
export interface PayloadIssue {
  /** Where in the payload, e.g. `items.0.sku` (`(payload)` for the whole). */
  path: string;
  /** What is wrong there. */
  message: string;
}

/** A payload its event's schema refused (PAYLOAD_INVALID, not retryable). */
export class PayloadError extends BuslineError {
  constructor(
    /** The event's name. */
    readonly event: string,
    /** The payload version that was checked. */
    readonly version: number,
    /** Each bad field. */
    readonly issues: PayloadIssue[],
    when: 'publish' | 'consume',
  ) {
    const where = when === 'publish' ? 'not published' : 'not handled';
    super(ErrorCode.PayloadInvalid, `${event} v${version} payload is invalid (${where}): ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
      details: { event, version, issues },
    });
  }
}

function issuePath(issue: StandardSchemaV1.Issue): string {
  if (!issue.path || issue.path.length === 0) return '(payload)';
  return issue.path.map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.');
}

/**
 * The schema's output for `payload`, or a PayloadError naming each bad field.
 * Synchronous schemas stay synchronous (the publish path makes no extra promise).
 */
export function validatePayload<E extends EventDefinition>(
  event: E,
  payload: unknown,
  when: 'publish' | 'consume',
): EventPayload<E> | PayloadError | Promise<EventPayload<E> | PayloadError> {
  const settle = (result: StandardSchemaV1.Result<unknown>): EventPayload<E> | PayloadError =>
    result.issues ? new PayloadError(event.name, event.version, result.issues.map((i) => ({ path: issuePath(i), message: i.message })), when) : (result.value as EventPayload<E>);
  const result = event.schema['~standard'].validate(payload);
  return result instanceof Promise ? result.then(settle) : settle(result);
}

/**
 * A received payload of `version`, brought to the definition's version
 * through its upcasters; a PayloadError when no path leads there.
 */
export function upcastPayload(event: EventDefinition, version: number, payload: unknown): unknown {
  if (version > event.version) {
    return new PayloadError(event.name, version, [{ path: '(version)', message: `published as version ${version}, but this service knows versions up to ${event.version}; deploy the newer definition, then replay the dead letter` }], 'consume');
  }
  let value = payload;
  for (let v = version; v < event.version; v++) {
    const step = event.upcast[v];
    if (step === undefined) {
      return new PayloadError(event.name, version, [{ path: '(version)', message: `no upcast from version ${v} to ${v + 1}; add upcast: { ${v}: (old) => ... } to the definition` }], 'consume');
    }
    value = (step as (old: unknown) => unknown)(value);
  }
  return value;
}

/** A handler of `subscribe(Event, handler)`: the payload is upcast and validated. */
export type EventHandler<E extends EventDefinition> = (payload: EventPayload<E>, context: EnvelopeContext) => unknown;

/**
 * The envelope handler behind `subscribe(Event, handler)`. An envelope of
 * another type is acknowledged without calling the handler, as Watermill's
 * event processors do: a topic may carry several events, each handled by its
 * own group. An invalid payload throws a PayloadError, which is not retried:
 * the message goes to the dead-letter topic with that reason.
 */
export function eventHandler<E extends EventDefinition>(event: E, handler: EventHandler<E>): EnvelopeHandler<unknown> {
  const call = (valid: EventPayload<E> | PayloadError, context: EnvelopeContext): unknown => {
    if (valid instanceof PayloadError) throw valid;
    return handler(valid, context);
  };
  return (envelope, context) => {
    if (envelope.type !== event.name) return undefined;
    const current = upcastPayload(event, envelope.version, envelope.payload);
    if (current instanceof PayloadError) throw current;
    const valid = validatePayload(event, current, 'consume');
    return valid instanceof Promise ? valid.then((v) => call(v, context)) : call(valid, context);
  };
}
