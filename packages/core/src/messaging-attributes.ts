import type { Attributes } from '@opentelemetry/api';

/**
 * The OpenTelemetry messaging semantic-convention attributes of a send to a
 * topic and of processing in a group: what metrics and spans both carry.
 * Frozen, and built once per topic (and group) by their callers: the SDK
 * copies or hashes attributes on every use, so a shared object is the cheap one.
 */
export function sendAttributes(system: string, topic: string): Readonly<Attributes> {
  return Object.freeze({
    'messaging.system': system,
    'messaging.operation.name': 'send',
    'messaging.operation.type': 'send',
    'messaging.destination.name': topic,
  });
}

export function processAttributes(system: string, topic: string, group: string): Readonly<Attributes> {
  return Object.freeze({
    'messaging.system': system,
    'messaging.operation.name': 'process',
    'messaging.operation.type': 'process',
    'messaging.destination.name': topic,
    'messaging.consumer.group.name': group,
  });
}
