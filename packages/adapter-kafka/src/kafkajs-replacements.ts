import { applyKafkajsBatch } from './kafkajs-batch.js';
import { applyKafkajsRecordBatchDecoder } from './kafkajs-record-batch-decoder.js';
import { applyKafkajsRecordDecoder } from './kafkajs-record-decoder.js';
import { applyKafkajsRecordEncoder } from './kafkajs-record-encoder.js';

/**
 * The kafkajs modules the adapter replaces for speed take effect only when
 * the adapter loads before the kafkajs module that captures them (kafkajs's
 * consumer group captures Batch as kafkajs loads; the fetch and produce
 * requests capture the record decoders and encoder on first use). A process
 * that imported kafkajs, or ran a kafkajs client, first keeps kafkajs's own:
 * delivery is the same, each record costs more CPU. Named here so that a bus
 * can say so once when it connects instead of running slower in silence.
 */
const REPLACEMENTS: readonly (readonly [string, () => boolean])[] = [
  ['Batch (consume)', applyKafkajsBatch],
  ['record batch decoder (consume)', applyKafkajsRecordBatchDecoder],
  ['record decoder (consume)', applyKafkajsRecordDecoder],
  ["record encoder (publish with producer.client 'kafkajs')", applyKafkajsRecordEncoder],
];

/** The replacements not in place. Applying one that is in place changes nothing, so this only asks. */
export function kafkajsReplacementsMissing(): string[] {
  return REPLACEMENTS.filter(([, apply]) => !apply()).map(([name]) => name);
}
