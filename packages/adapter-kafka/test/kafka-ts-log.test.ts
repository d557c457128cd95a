/**
 * kafka-ts has one logger per process: while kafka-ts producers are open,
 * an entry goes to the oldest one's logger whose level admits it, redacted;
 * once the last closes, kafka-ts's previous logger is back.
 */
import { describe, expect, it } from 'vitest';
import kafkaTs from 'kafka-ts';
import type { Logger } from '@busline/core';
import { routeKafkaTsLog } from '../src/kafka-ts-log.js';

function recorder() {
  const entries: [string, Record<string, unknown>, string][] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void entries.push([level, obj, msg]);
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as unknown as Logger;
  return { logger, entries };
}

describe('kafka-ts log routing', () => {
  it('goes to the oldest open producer whose level admits the entry, redacted; the previous logger returns after the last', () => {
    const before = kafkaTs.log;
    const quiet = recorder();
    const verbose = recorder();
    const unrouteQuiet = routeKafkaTsLog(quiet.logger, 'warn');
    const unrouteVerbose = routeKafkaTsLog(verbose.logger, 'debug');
    kafkaTs.log.warn('Retries exhausted', { lastError: new Error('NOT_ENOUGH_REPLICAS'), sasl: { password: 'pw' } });
    kafkaTs.log.debug('Refreshing metadata', { reason: 'NOT_LEADER_OR_FOLLOWER' });
    expect(quiet.entries.map(([level, , msg]) => [level, msg])).toEqual([['warn', 'Retries exhausted']]);
    expect(quiet.entries[0]![1]).toMatchObject({ kafka: 'kafka-ts', lastError: { message: 'NOT_ENOUGH_REPLICAS' }, sasl: '[redacted]' });
    expect(verbose.entries.map(([level, , msg]) => [level, msg])).toEqual([['debug', 'Refreshing metadata']]);

    unrouteQuiet();
    kafkaTs.log.warn('Failed to connect to seed broker');
    expect(verbose.entries.at(-1)?.[2]).toBe('Failed to connect to seed broker');
    expect(kafkaTs.log).not.toBe(before);
    unrouteVerbose();
    expect(kafkaTs.log).toBe(before);
    unrouteVerbose(); // twice is harmless
    expect(kafkaTs.log).toBe(before);
  });
});
