/**
 * Waiting helpers for the suite. Every wait is a predicate polled against a
 * deadline or an awaited event — never a sleep used as synchronization — so a
 * slow broker makes a test slower, not flaky, and a broken one fails with a
 * message that says what was missing.
 */
import { randomBytes } from 'node:crypto';
import { DeadLetterHeader, type BuslineError, type EventBus, type WireMessage } from '@busline/core';
import type { Harness } from './harness.js';

/** A name safe as a topic and as a group on every adapter: letters, digits and `-`. */
export function uniqueName(prefix: string): string {
  return `bl-${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** How long `waitFor` polls, and what it reports when the deadline passes. */
export interface WaitOptions {
  timeoutMs: number;
  /** What was expected, shown when the deadline passes. */
  message: string | (() => string);
  /** Poll interval; default 5 ms. */
  intervalMs?: number;
}

/** Polls `predicate` until it returns true (or a promise of true), failing after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 5;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline) {
      const text = typeof options.message === 'function' ? options.message() : options.message;
      throw new Error(`timed out after ${options.timeoutMs} ms: ${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** The error `promise` rejects with; fails the test when it resolves. */
export async function rejection<E = BuslineError>(promise: Promise<unknown>): Promise<E> {
  try {
    await promise;
  } catch (error) {
    return error as E;
  }
  throw new Error('expected the call to reject, but it resolved');
}

/** A promise with its resolve and reject functions, for settling it from a handler. */
export interface Deferred<T> {
  promise: Promise<T>;
  /** Fulfils `promise` with `value`. */
  resolve(value: T): void;
  /** Rejects `promise` with `error`. */
  reject(error: unknown): void;
}

/** Makes a Deferred: a promise settled from outside (a handler signalling a test). */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves with the first `eventName` emission of `emitter` that satisfies `match`. */
export function nextEvent<A extends unknown[]>(
  emitter: { on(event: string, fn: (...args: A) => void): unknown; off(event: string, fn: (...args: A) => void): unknown },
  eventName: string,
  options: { timeoutMs: number; match?: (...args: A) => boolean },
): Promise<A> {
  return new Promise<A>((resolve, reject) => {
    const listener = (...args: A) => {
      if (options.match && !options.match(...args)) return;
      clearTimeout(timer);
      emitter.off(eventName, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(eventName, listener);
      reject(new Error(`timed out after ${options.timeoutMs} ms waiting for the '${eventName}' event`));
    }, options.timeoutMs);
    emitter.on(eventName, listener);
  });
}

/**
 * Records received items by id. Duplicates (at-least-once redelivery) are
 * counted but do not count twice towards `size`; `waitForIds` resolves once
 * every expected id arrived, and on timeout names what is missing.
 */
export class Collector<T = unknown> {
  readonly items = new Map<string, T>();
  /** Every arrival, duplicates included, in arrival order. */
  readonly arrivals: string[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly trackers = new Set<(id: string) => void>();

  /** Records an arrival of `id` (a repeat counts in `arrivals` only). */
  add(id: string, item: T): void {
    this.arrivals.push(id);
    if (this.items.has(id)) return;
    this.items.set(id, item);
    for (const track of this.trackers) track(id);
    for (const wake of [...this.waiters]) wake();
  }

  /** Distinct ids that arrived (a duplicate counts once). */
  get size(): number {
    return this.items.size;
  }

  /** Whether `id` arrived at least once. */
  has(id: string): boolean {
    return this.items.has(id);
  }

  /** Ids that arrived more than once. */
  duplicates(): string[] {
    const seen = new Set<string>();
    const dup = new Set<string>();
    for (const id of this.arrivals) (seen.has(id) ? dup : seen).add(id);
    return [...dup];
  }

  /** The ids of `expected` that never arrived. */
  missing(expected: Iterable<string>): string[] {
    const out: string[] = [];
    for (const id of expected) if (!this.items.has(id)) out.push(id);
    return out;
  }

  /** Ids received that were not expected. */
  unexpected(expected: Iterable<string>): string[] {
    const want = new Set(expected);
    return [...this.items.keys()].filter((id) => !want.has(id));
  }

  /** Resolves when at least `count` distinct ids arrived. */
  waitForCount(count: number, timeoutMs: number, what = 'messages'): Promise<void> {
    return this.waitUntil(() => this.items.size >= count, timeoutMs, () => `${what}: ${this.items.size} of ${count} distinct arrived`);
  }

  /** Resolves when every id in `expected` arrived (cost O(1) per arrival, so it scales to large counts). */
  waitForIds(expected: Iterable<string>, timeoutMs: number, what = 'messages'): Promise<void> {
    const ids = [...expected];
    const remaining = new Set(ids.filter((id) => !this.items.has(id)));
    const track = (id: string) => void remaining.delete(id);
    this.trackers.add(track);
    return this.waitUntil(
      () => remaining.size === 0,
      timeoutMs,
      () => `${what}: ${ids.length - remaining.size} of ${ids.length} arrived; missing e.g. ${[...remaining].slice(0, 5).join(', ')}`,
    ).finally(() => this.trackers.delete(track));
  }

  /** Event-driven wait: re-checks `condition` on every arrival until the deadline. */
  waitUntil(condition: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms: ${describe()}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

/** Runs `task(i)` for i in [0, count) with at most `limit` running at once; rejects on the first failure. */
export async function runWithConcurrency(count: number, limit: number, task: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

/** A small random async pause (0..maxMs) that handlers use to shuffle completion order. */
export function jitter(maxMs: number): Promise<void> {
  const ms = Math.floor(Math.random() * (maxMs + 1));
  if (ms === 0) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Shuffles `items` in place (Fisher–Yates) and returns them, so tests publish keys in no particular
 * order.
 */
export function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** A message read from a dead-letter topic, with that topic's name. */
export type DeadLetter = WireMessage & { topic: string };

/**
 * Reads a dead-letter topic raw (it may hold bytes that are not envelopes),
 * keyed by the original event id (or the body, for messages without one).
 * With `all`, every copy is kept under `<original id>/<group>`.
 */
export async function readDeadLetters(h: Harness, bus: EventBus, dlqTopic: string, options: { all?: boolean } = {}): Promise<Collector<DeadLetter>> {
  const c = new Collector<DeadLetter>();
  await bus.subscribeWire(
    dlqTopic,
    async (message) => {
      // Copies written before dead letters had ids of their own carry the original's id (ce-id, or ce_id on Kafka).
      const original =
        message.headers[DeadLetterHeader.originalId] ?? message.headers['ce-id'] ?? message.headers.ce_id ?? `body:${Buffer.from(message.body).toString('hex')}`;
      c.add(options.all ? `${original}/${message.headers[DeadLetterHeader.group]}` : original, message);
    },
    { group: h.group('dlq-reader'), startFrom: 'earliest' },
  );
  return c;
}

/** Deterministic "transient failure" of about `percent` % of the ids (a hash, so every member and retry agrees). */
export function failsFirst(id: string, percent: number): boolean {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) | 0;
  return Math.abs(h) % 100 < percent;
}
