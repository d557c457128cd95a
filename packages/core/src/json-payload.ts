/**
 * What `publish` accepts, checked at compile time: any value whose JSON form
 * is what the consumer will see, including objects typed by an interface or
 * a class (no index signature needed), or raw bytes as the whole payload.
 * Fields that JSON would silently change get a compile error whose text says
 * what to send instead; the checks at run time stay as they were.
 */
import type { JsonValue, Payload } from './envelope.js';

/** The compiler prints this literal, so it is written as advice. */
type NotJson<Why extends string> = `busline: ${Why}`;

type JsonField<T> = unknown extends T
  ? T // any / unknown: left to the run-time check
  : [T] extends [JsonValue]
    ? T // already JSON: not walked (JsonValue is recursive)
    : T extends string | number | boolean | null | undefined
      ? T // undefined fields are left out by JSON, as an absent optional field
      : T extends Date
        ? NotJson<'a Date field would arrive as a string; send date.toISOString(), or use defineEvent with a schema that parses it (e.g. z.coerce.date())'>
        : T extends bigint
          ? NotJson<'a bigint cannot be written as JSON; send it as a string'>
          : T extends symbol
            ? NotJson<'a symbol cannot be written as JSON'>
            : T extends ReadonlyMap<unknown, unknown> | ReadonlySet<unknown>
              ? NotJson<'a Map or Set would arrive as {}; send an object or an array'>
              : T extends Uint8Array
                ? NotJson<'bytes inside a JSON payload would arrive as an object of numbers; send base64 text, or the bytes as the whole payload'>
                : T extends (...args: never[]) => unknown
                  ? T // methods of a class instance: JSON leaves them out
                  : { [K in keyof T]: JsonField<T[K]> };

/**
 * `P` where it travels as JSON unchanged (or is a Uint8Array, sent as bytes);
 * otherwise a type whose mismatch message names the offending field. Used as
 * `payload: P & JsonPayload<P>`, so `P` is inferred from the argument.
 */
export type JsonPayload<P> = unknown extends P
  ? P
  : [P] extends [Payload]
    ? P
    : P extends Uint8Array
      ? P
      : P extends undefined
        ? NotJson<'undefined is not a payload; use null'>
        : P extends (...args: never[]) => unknown
          ? NotJson<'a function is not a payload'>
          : JsonField<P>;
