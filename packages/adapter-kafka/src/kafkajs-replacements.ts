import { applyKafkajsBatch, KAFKAJS_BATCH_VERSION } from './kafkajs-batch.js';
import { kafkajsVersion } from './kafkajs-internals.js';
import { applyKafkajsRecordBatchDecoder } from './kafkajs-record-batch-decoder.js';
import { applyKafkajsRecordDecoder } from './kafkajs-record-decoder.js';
import { applyKafkajsRecordEncoder } from './kafkajs-record-encoder.js';

/**
 * The kafkajs modules the adapter replaces for speed take effect only when
 * the adapter loads before the kafkajs module that captures them (kafkajs's
 * consumer group captures Batch as kafkajs loads; the fetch and produce
 * requests capture the record decoders and encoder on a client's first fetch
 * or produce). A process that imported kafkajs, or ran a kafkajs client,
 * first keeps kafkajs's own: delivery is the same, each record costs more
 * CPU. Named here so that a bus can say so once when it connects instead of
 * running slower in silence.
 */
const REPLACEMENTS: readonly { name: string; apply: () => boolean; publishWithKafkajsOnly?: true }[] = [
  { name: 'Batch', apply: applyKafkajsBatch },
  { name: 'record batch decoder', apply: applyKafkajsRecordBatchDecoder },
  { name: 'record decoder', apply: applyKafkajsRecordDecoder },
  { name: 'record encoder', apply: applyKafkajsRecordEncoder, publishWithKafkajsOnly: true },
];

/**
 * The replacements not in place that matter to a bus publishing through `producerClient` (the
 * encoder only with kafkajs). Applying one that is in place changes nothing, so this only asks.
 */
function kafkajsReplacementsMissing(producerClient: 'kafkajs' | 'kafka-ts'): string[] {
  return REPLACEMENTS.filter((r) => (producerClient === 'kafkajs' || !r.publishWithKafkajsOnly) && !r.apply()).map((r) => r.name);
}

/** What a bus logs (at info) when some are missing, and why they are: load order, or another kafkajs. */
export function kafkajsReplacementsNotice(producerClient: 'kafkajs' | 'kafka-ts'): { fields: Record<string, unknown>; message: string } | undefined {
  const missing = kafkajsReplacementsMissing(producerClient);
  if (missing.length === 0) return undefined;
  const version = kafkajsVersion();
  const names = missing.length === 1 ? missing[0]! : `${missing.slice(0, -1).join(', ')} and ${missing.at(-1)!}`;
  const what =
    `kafkajs's own ${names} ${missing.length === 1 ? 'is' : 'are'} in use instead of the adapter's faster ` +
    `${missing.length === 1 ? 'replacement' : 'replacements'}: delivery is the same, but each record costs more CPU. `;
  const why =
    version === KAFKAJS_BATCH_VERSION
      ? 'kafkajs was imported, or a kafkajs client fetched or produced, before @busline/adapter-kafka loaded: import @busline/adapter-kafka before anything that imports kafkajs.'
      : `The replacements are written for kafkajs ${KAFKAJS_BATCH_VERSION}; this process has kafkajs ${version ?? 'of an unknown version'}.`;
  return { fields: { kafka: 'kafkajs', kafkajsVersion: version, missing }, message: what + why };
}
