import { describe, expect, it } from 'vitest';
import { createLogCreator, redact } from '../src/log.js';

describe('kafkajs log redaction', () => {
  it('replaces credential-like fields at any depth', () => {
    const out = redact({ broker: 'h:9092', sasl: { mechanism: 'plain', username: 'u', password: 'p' }, nested: { ssl: { key: 'k' }, password: 'x' } });
    expect(JSON.stringify(out)).not.toMatch(/"p"|"k"|"x"/);
    expect(out).toMatchObject({ broker: 'h:9092', sasl: '[redacted]', nested: { ssl: '[redacted]', password: '[redacted]' } });
  });

  it("hands each entry to the bus's logger at its level, redacted", () => {
    const entries: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
    const at = (level: string) => (obj: Record<string, unknown>, msg: string) => void entries.push({ level, obj, msg });
    const log = createLogCreator({ debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') })(0 as never);
    log({ namespace: 'Connection', level: 1, label: 'ERROR', log: { message: 'auth failed', timestamp: 't', sasl: { password: 'pw' } } } as never);
    log({ namespace: 'Consumer', level: 2, label: 'WARN', log: { message: 'rebalancing', timestamp: 't' } } as never);
    expect(entries.map((e) => [e.level, e.msg, e.obj.kafkajs])).toEqual([
      ['error', 'auth failed', 'Connection'],
      ['warn', 'rebalancing', 'Consumer'],
    ]);
    expect(JSON.stringify(entries)).not.toContain('pw');
  });
});
