/**
 * Refuses option objects with names busline does not know. A misspelt or
 * guessed option (`{ key }` for `aggregateId`) would otherwise be ignored and
 * the event published without it, e.g. unordered.
 */
import type { EnvelopeOptions } from './envelope.js';
import { BuslineError, ErrorCode } from './errors.js';

/** Typed against EnvelopeOptions, so a new envelope option cannot be forgotten here. */
const ENVELOPE_OPTIONS: Record<keyof EnvelopeOptions, true> = {
  id: true,
  type: true,
  source: true,
  aggregateId: true,
  version: true,
  time: true,
  traceId: true,
  correlationId: true,
  causationId: true,
  tenantId: true,
  headers: true,
};

export const PUBLISH_OPTION_NAMES: ReadonlySet<string> = new Set([...Object.keys(ENVELOPE_OPTIONS), 'timeoutMs']);
export const BATCH_ITEM_NAMES: ReadonlySet<string> = new Set([...Object.keys(ENVELOPE_OPTIONS), 'payload']);
export const BATCH_OPTION_NAMES: ReadonlySet<string> = new Set(['timeoutMs', 'atomic']);
export const TIMEOUT_OPTION_NAMES: ReadonlySet<string> = new Set(['timeoutMs']);

/** Names people reach for from other clients, and what busline calls them. */
const SUGGESTIONS: Record<string, string> = {
  key: 'aggregateId (the ordering and partition key)',
  partitionKey: 'aggregateId',
  messageId: 'id',
  subject: 'aggregateId',
  timeout: 'timeoutMs',
};

/**
 * Throws CONFIG_INVALID naming each unknown option (and the likely intended
 * one), naming the call as `<what>[ item <item>][ to "<topic>"]`. The label
 * is built only for an error: this runs on every publish.
 */
export function checkOptionNames(options: unknown, allowed: ReadonlySet<string>, what: string, topic?: string, item?: number): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new BuslineError(ErrorCode.ConfigInvalid, `${label(what, topic, item)} must be an object, got ${Array.isArray(options) ? 'an array' : String(options)}`);
  }
  let unknown: string[] | undefined;
  for (const name in options) if (!allowed.has(name)) (unknown ??= []).push(name);
  if (unknown === undefined) return;
  const lines = unknown.map((name) => (SUGGESTIONS[name] && allowed.has(SUGGESTIONS[name].split(' ')[0]!) ? `"${name}" (did you mean ${SUGGESTIONS[name]}?)` : `"${name}"`));
  throw new BuslineError(ErrorCode.ConfigInvalid, `${label(what, topic, item)}: unknown option ${lines.join(', ')}; known options are ${[...allowed].join(', ')}`, {
    details: { unknown },
  });
}

function label(what: string, topic: string | undefined, item: number | undefined): string {
  return `${what}${item === undefined ? '' : ` item ${item}`}${topic === undefined ? '' : ` to "${topic}"`}`;
}
