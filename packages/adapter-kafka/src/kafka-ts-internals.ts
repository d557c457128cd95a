/**
 * Loading kafka-ts's internal modules for the adapter's replacements
 * (kafka-ts-record-batch.ts, kafka-ts-no-delay.ts), and the mark a replaced
 * function keeps its original under, so each is put in place once per
 * process and the original stays reachable (tests compare against it).
 */
import { createRequire } from 'node:module';

/** Where a replacement keeps the kafka-ts function it replaced. */
export const KAFKA_TS_ORIGINAL = Symbol.for('busline.kafkaTs.original');

/** kafka-ts's module `kafka-ts/dist/<path>`, or undefined when this kafka-ts has none there. */
export function kafkaTsModule<T>(path: string): T | undefined {
  try {
    return createRequire(import.meta.url)(`kafka-ts/dist/${path}`) as T;
  } catch {
    return undefined;
  }
}
