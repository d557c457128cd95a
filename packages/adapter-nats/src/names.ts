import { createHash } from 'node:crypto';

/**
 * Names on the broker, derived from busline topic and group names.
 *
 * A topic (letters, digits, `.`, `_`, `-`; see core's topic rules) is used as
 * the NATS subject unchanged. Stream and consumer names may not contain `.`,
 * so `.` becomes `_`; because that makes `a.b` and `a_b` look alike, any name
 * that contained `.` or `_` gets a short hash of the original appended. Names
 * without either are kept readable as they are (`BL_orders`), and the two
 * forms cannot collide: a hashed name always has at least two `_` after the
 * prefix's, an unhashed one none.
 */

const MAX_NAME = 200;

export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

function safePart(name: string): string {
  if (!/[._]/.test(name) && name.length <= MAX_NAME) return name;
  const flat = name.replace(/\./g, '_');
  return `${flat.slice(0, MAX_NAME - 9)}_${shortHash(name)}`;
}

/** The stream of a persistent topic in per-topic mode, e.g. `BL_orders`, `BL_orders_created_1a2b3c4d`. */
export function streamNameFor(topic: string, prefix: string): string {
  return `${prefix}${safePart(topic)}`;
}

/**
 * The durable consumer of (topic, group). In per-topic mode the stream already
 * names the topic, so the group name (letters, digits, `_`, `-`) is the
 * durable; in shared mode the topic is folded in.
 */
export function durableNameFor(group: string, topic: string, shared: boolean): string {
  if (!shared) return group.length <= MAX_NAME ? group : `${group.slice(0, MAX_NAME - 9)}_${shortHash(group)}`;
  return `${group.slice(0, 80)}__${safePart(topic).slice(0, 100)}_${shortHash(`${group}\u0000${topic}`)}`;
}
