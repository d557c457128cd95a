import { describe, expect, it } from 'vitest';
import { MINIMUM_SERVER, serverSupported } from '../src/server-version.js';

describe('nats-server version check at connect', () => {
  it(`accepts ${MINIMUM_SERVER} and newer, refuses older and unreadable versions`, () => {
    for (const v of ['2.9.0', '2.9.10', '2.10.0', '2.11.4', '2.15.2', '3.0.0', '2.12.0-RC.1']) expect(serverSupported(v), v).toBe(true);
    for (const v of ['2.8.4', '2.2.0', '1.4.1', '', 'unknown', '2.9']) expect(serverSupported(v), v).toBe(false);
  });
});
