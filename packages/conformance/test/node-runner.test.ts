import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

describe('the conformance suite under another runner', () => {
  it('node:test runs the bound definitions: passes, and a capability the adapter lacks is a skip with the reason', async () => {
    const file = fileURLToPath(new URL('./node-runner/memory.node-test.mjs', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--test', '--test-reporter=tap', file], { cwd: fileURLToPath(new URL('..', import.meta.url)) });
    expect(stdout).toMatch(/^# pass 3$/m);
    expect(stdout).toMatch(/^# skipped 1$/m);
    expect(stdout).toMatch(/^# fail 0$/m);
    expect(stdout).toMatch(/# SKIP adapter memory \(node:test\) does not declare capability survivesBrokerRestart/);
  }, 60_000);
});
