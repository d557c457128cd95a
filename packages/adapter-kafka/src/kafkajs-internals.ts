import { createRequire } from 'node:module';

/**
 * A private module of the kafkajs this adapter depends on (`kafkajs/src/…`),
 * for the fixes applied to it when the adapter loads; undefined when kafkajs
 * has no such file (another version), so a fix is skipped, never an error.
 */
export function kafkajsInternal<T>(path: string): T | undefined {
  try {
    return createRequire(import.meta.url)(`kafkajs/src/${path}`) as T;
  } catch {
    return undefined;
  }
}
