// Where scripts/brokers keeps Kafka's jars (.cache/kafka-<version>/libs), or BUSLINE_KAFKA_LIBS.
// Plain ESM so both the tests and the benchmark (run by node without a build) use this one lookup.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The directory of Kafka's jars, or undefined when scripts/brokers has not fetched them yet. */
export function kafkaLibs() {
  if (process.env.BUSLINE_KAFKA_LIBS) return process.env.BUSLINE_KAFKA_LIBS;
  const cache = join(REPO, '.cache');
  if (!existsSync(cache)) return undefined;
  const dir = readdirSync(cache)
    .filter((d) => /^kafka-\d/.test(d) && existsSync(join(cache, d, 'libs')))
    .sort()
    .pop();
  return dir ? join(cache, dir, 'libs') : undefined;
}
