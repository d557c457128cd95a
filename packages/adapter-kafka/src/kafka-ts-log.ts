/**
 * kafka-ts logs through one logger per process (`setLogger`), not one per
 * client, so an entry cannot tell which bus it belongs to. While kafka-ts
 * producers are open, their log goes to the logger of the oldest one whose
 * `logLevel` admits the entry (redacted like kafkajs's); when the last one
 * closes, the logger kafka-ts had before is put back.
 */
import kafkaTs from 'kafka-ts';
import type { Logger } from '@busline/core/driver';
import type { KafkaConfig } from './config.js';
import { redact } from './log.js';

type Method = 'debug' | 'info' | 'warn' | 'error';
type KafkaTsLogger = Record<Method, (message: string, metadata?: unknown) => void>;

const RANK: Record<KafkaConfig['logLevel'], number> = { nothing: 0, error: 1, warn: 2, info: 3, debug: 4 };

interface Sink {
  readonly logger: Logger;
  readonly level: number;
}

/** Open producers' loggers, oldest first. */
const sinks: Sink[] = [];
let previous: KafkaTsLogger | undefined;

function forward(method: Method) {
  return (message: string, metadata?: unknown): void => {
    const sink = sinks.find((s) => s.level >= RANK[method]);
    if (sink === undefined) return;
    const fields = metadata !== null && typeof metadata === 'object' ? (redact(metadata) as Record<string, unknown>) : {};
    sink.logger[method]({ kafka: 'kafka-ts', ...fields }, message);
  };
}

const router: KafkaTsLogger = { debug: forward('debug'), info: forward('info'), warn: forward('warn'), error: forward('error') };

/** Routes kafka-ts's log to `logger` (at most `level`) until the returned function is called. */
export function routeKafkaTsLog(logger: Logger, level: KafkaConfig['logLevel']): () => void {
  if (sinks.length === 0) {
    previous = kafkaTs.log as KafkaTsLogger;
    kafkaTs.setLogger(router);
  }
  const sink: Sink = { logger, level: RANK[level] };
  sinks.push(sink);
  return () => {
    const i = sinks.indexOf(sink);
    if (i < 0) return;
    sinks.splice(i, 1);
    if (sinks.length === 0 && previous !== undefined) {
      kafkaTs.setLogger(previous);
      previous = undefined;
    }
  };
}
