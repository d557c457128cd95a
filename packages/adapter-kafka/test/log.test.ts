import { describe, expect, it } from 'vitest';
import { createLogCreator, redact } from '../src/log.js';

describe('kafkajs log redaction', () => {
  it('replaces credential-like fields at any depth', () => {
    const out = redact({ broker: 'h:9092', sasl: { mechanism: 'plain', username: 'u', password: 'p' }, nested: { ssl: { key: 'k' }, password: 'x' } });
    expect(JSON.stringify(out)).not.toMatch(/"p"|"k"|"x"/);
    expect(out).toMatchObject({ broker: 'h:9092', sasl: '[redacted]', nested: { ssl: '[redacted]', password: '[redacted]' } });
  });

  it('writes one redacted line per entry', () => {
    const lines: string[] = [];
    const log = createLogCreator((l) => lines.push(l))(0 as never);
    log({ namespace: 'Connection', level: 1, label: 'ERROR', log: { message: 'auth failed', timestamp: 't', sasl: { password: 'pw' } } } as never);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('auth failed');
    expect(lines[0]).not.toContain('pw"');
  });
});
