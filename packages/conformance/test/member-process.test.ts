/**
 * MemberProcess against real child processes (member-main from dist, as the
 * adapters' tests run it), on the in-memory adapter: no broker needed, each
 * member has a broker of its own, which is enough to start and stop it.
 */
import { describe, expect, it } from 'vitest';
import { MemberProcess, OrderChecker, type MemberSpec } from '../dist/index.js';

const spec = (adapterModule?: string): MemberSpec => ({
  config: { type: 'memory' },
  adapterModule: adapterModule ?? new URL('../../adapter-memory/dist/index.js', import.meta.url).href,
  topic: 'member-process-test',
  group: 'g',
  handlerMs: 1,
  failPercent: 0,
});

/** A checker that notes which members it was told died. */
class Recorder extends OrderChecker {
  readonly died: string[] = [];
  override memberDied(member: string, at?: bigint): void {
    this.died.push(member);
    super.memberDied(member, at);
  }
}

describe('MemberProcess.stop()', () => {
  it('a member that closes on SIGTERM stops within the bound', async () => {
    const checker = new Recorder();
    const member = await MemberProcess.start('closes', spec(), checker, 30_000);
    await member.stop(20_000);
    expect(member.driverMetrics, 'metrics reported before it exited').toBeDefined();
    expect(checker.died).toEqual([]);
  }, 60_000);

  it('a member whose close hangs is killed after the bound, marked dead, and stop() rejects saying so', async () => {
    const checker = new Recorder();
    const member = await MemberProcess.start('hangs', spec(new URL('./fixtures/hanging-close-adapter.mjs', import.meta.url).href), checker, 30_000);
    const startedAt = Date.now();
    await expect(member.stop(1_500)).rejects.toThrow('member hangs did not close within 1500 ms after SIGTERM');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_400);
    expect(checker.died).toEqual(['hangs']);
    // It is gone: a second stop() has nothing to do.
    await member.stop(1_500);
  }, 60_000);

  it('stopAll stops every member and then rejects with the failure', async () => {
    const checker = new Recorder();
    const [ok, hung] = await Promise.all([
      MemberProcess.start('ok', spec(), checker, 30_000),
      MemberProcess.start('hung', spec(new URL('./fixtures/hanging-close-adapter.mjs', import.meta.url).href), checker, 30_000),
    ]);
    await expect(MemberProcess.stopAll([hung!, ok!], 1_500)).rejects.toThrow('member hung did not close within 1500 ms after SIGTERM');
    expect(ok!.driverMetrics).toBeDefined();
    expect(checker.died).toEqual(['hung']);
  }, 60_000);
});
