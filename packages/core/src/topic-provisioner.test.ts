import { describe, expect, it, vi } from 'vitest';
import { ErrorCode, TopicMismatchError, type FieldDifference } from './errors.js';
import { TopicProvisioner, type MismatchAction, type TopicAdmin, type TopicStrategy } from './topic-provisioner.js';
import { topicOptionsSchema, type TopicOptions, type TopicState } from './topic.js';

/** A topic admin over a map, counting calls; `gate` holds describe calls until released. */
function fakeAdmin(initial: Record<string, TopicState> = {}) {
  const topics = new Map(Object.entries(initial));
  const calls = { describe: 0, create: 0, update: 0 };
  let release: (() => void) | undefined;
  let gate: Promise<void> | undefined;
  const admin: TopicAdmin = {
    async describeTopic(topic) {
      calls.describe++;
      if (gate) await gate;
      return topics.get(topic);
    },
    async createTopic(topic, options) {
      calls.create++;
      topics.set(topic, { ...options });
    },
    async updateTopic(topic, options, differences) {
      calls.update++;
      const refused = differences.filter((d) => d.field === 'partitions' && (d.wanted as number) < (d.actual as number));
      if (refused.length) throw new TopicMismatchError(topic, refused, 'cannot be changed that way');
      topics.set(topic, { ...topics.get(topic), ...options });
    },
  };
  return {
    admin,
    topics,
    calls,
    hold() {
      gate = new Promise((r) => (release = r));
    },
    release() {
      gate = undefined;
      release?.();
    },
  };
}

const opts = (o: Partial<TopicOptions> = {}) => topicOptionsSchema.parse(o);

function provisioner(admin: TopicAdmin, strategy: TopicStrategy, onMismatch: MismatchAction) {
  const warnings: { topic: string; differences: FieldDifference[] }[] = [];
  const p = new TopicProvisioner(admin, { strategy, onMismatch }, (topic, differences) => warnings.push({ topic, differences }));
  return { p, warnings };
}

const existing = { t: { persistence: 'persistent', retentionMs: 1000, partitions: 3 } as TopicState };
const wanted = opts({ retentionMs: 5000, partitions: 3 });

describe('TopicProvisioner', () => {
  it('createOnly and createOrUpdate create a missing topic', async () => {
    for (const strategy of ['createOnly', 'createOrUpdate'] as const) {
      const f = fakeAdmin();
      const { p } = provisioner(f.admin, strategy, 'fail');
      await expect(p.ensure('t', wanted)).resolves.toEqual({ action: 'created', differences: [] });
      expect(f.topics.get('t')).toMatchObject({ retentionMs: 5000 });
    }
  });

  it('validateOnly never creates: a missing topic is TOPIC_NOT_FOUND', async () => {
    const f = fakeAdmin();
    const { p } = provisioner(f.admin, 'validateOnly', 'warn');
    await expect(p.ensure('t', wanted)).rejects.toMatchObject({ code: ErrorCode.TopicNotFound });
    expect(f.calls.create).toBe(0);
    expect(p.isEnsured('t')).toBe(false);
  });

  it('skip makes no broker call', async () => {
    const f = fakeAdmin();
    const { p } = provisioner(f.admin, 'skip', 'fail');
    await expect(p.ensure('t', wanted)).resolves.toEqual({ action: 'skipped', differences: [] });
    expect(f.calls).toEqual({ describe: 0, create: 0, update: 0 });
  });

  it('verifies an existing topic that matches', async () => {
    const f = fakeAdmin({ t: { persistence: 'persistent', retentionMs: 5000, partitions: 3 } });
    const { p } = provisioner(f.admin, 'validateOnly', 'fail');
    await expect(p.ensure('t', wanted)).resolves.toEqual({ action: 'verified', differences: [] });
  });

  describe.each(['createOnly', 'validateOnly'] as const)('%s on a mismatching topic never modifies it', (strategy) => {
    it('warn: emits the differences and resolves', async () => {
      const f = fakeAdmin(existing);
      const { p, warnings } = provisioner(f.admin, strategy, 'warn');
      const result = await p.ensure('t', wanted);
      expect(result).toEqual({ action: 'mismatch', differences: [{ field: 'retentionMs', wanted: 5000, actual: 1000 }] });
      expect(warnings).toEqual([{ topic: 't', differences: result.differences }]);
      expect(f.calls.update + f.calls.create).toBe(0);
    });
    it('fail: rejects naming every differing field with wanted and actual', async () => {
      const f = fakeAdmin({ t: { persistence: 'persistent', retentionMs: 1000, maxMessages: 10 } });
      const { p } = provisioner(f.admin, strategy, 'fail');
      const error = await p.ensure('t', opts({ retentionMs: 5000, maxMessages: 20 })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TopicMismatchError);
      expect((error as Error).message).toContain('retentionMs wanted 5000, actual 1000');
      expect((error as Error).message).toContain('maxMessages wanted 20, actual 10');
      expect(p.isEnsured('t')).toBe(false);
    });
    it('ignore: resolves without an event', async () => {
      const f = fakeAdmin(existing);
      const { p, warnings } = provisioner(f.admin, strategy, 'ignore');
      await expect(p.ensure('t', wanted)).resolves.toMatchObject({ action: 'mismatch' });
      expect(warnings).toEqual([]);
      expect(f.calls.update).toBe(0);
    });
  });

  it('createOrUpdate updates a mismatching topic', async () => {
    const f = fakeAdmin(existing);
    const { p } = provisioner(f.admin, 'createOrUpdate', 'fail');
    await expect(p.ensure('t', wanted)).resolves.toMatchObject({ action: 'updated' });
    expect(f.topics.get('t')).toMatchObject({ retentionMs: 5000 });
  });

  it.each(['warn', 'fail', 'ignore'] as const)('createOrUpdate applies mismatch action %s to fields the broker refuses', async (action) => {
    const f = fakeAdmin(existing);
    const { p, warnings } = provisioner(f.admin, 'createOrUpdate', action);
    const run = p.ensure('t', opts({ partitions: 1 }));
    if (action === 'fail') await expect(run).rejects.toMatchObject({ code: ErrorCode.TopicMismatch });
    else await expect(run).resolves.toMatchObject({ action: 'mismatch', differences: [{ field: 'partitions', wanted: 1, actual: 3 }] });
    expect(warnings.length).toBe(action === 'warn' ? 1 : 0);
  });

  it("a refusal from a driver built against another copy of core (same code, another class) is still the mismatch, not a crash", async () => {
    const f = fakeAdmin(existing);
    // A separately evaluated errors module: what an adapter with its own @busline/core throws.
    vi.resetModules();
    const other = await import('./errors.js');
    expect(other.TopicMismatchError).not.toBe(TopicMismatchError);
    f.admin.updateTopic = async () => {
      throw new other.TopicMismatchError('t', [{ field: 'partitions', wanted: 1, actual: 3 }], 'cannot be changed that way');
    };
    const { p } = provisioner(f.admin, 'createOrUpdate', 'ignore');
    await expect(p.ensure('t', opts({ partitions: 1 }))).resolves.toMatchObject({ action: 'mismatch', differences: [{ field: 'partitions', wanted: 1, actual: 3 }] });
  });

  it('does not compare fields the caller left unset or the broker cannot report', async () => {
    const f = fakeAdmin({ t: { persistence: 'persistent', retentionMs: 1 } });
    const { p } = provisioner(f.admin, 'validateOnly', 'fail');
    await expect(p.ensure('t', opts({ description: 'x' }))).resolves.toMatchObject({ action: 'verified' });
  });

  it('collapses concurrent first uses into one describe (single-flight) and caches the result', async () => {
    const f = fakeAdmin();
    f.hold();
    const { p } = provisioner(f.admin, 'createOnly', 'fail');
    const all = Array.from({ length: 50 }, () => p.ensure('t', wanted));
    await vi.waitFor(() => expect(f.calls.describe).toBe(1));
    f.release();
    const results = await Promise.all(all);
    expect(results.every((r) => r.action === 'created')).toBe(true);
    expect(f.calls).toEqual({ describe: 1, create: 1, update: 0 });
    expect(p.isEnsured('t')).toBe(true);
    await p.ensure('t', wanted);
    expect(f.calls.describe).toBe(1);
  });

  it('does not cache failures: the next use asks again', async () => {
    const f = fakeAdmin();
    const { p } = provisioner(f.admin, 'validateOnly', 'fail');
    await expect(p.ensure('t', wanted)).rejects.toThrow();
    f.topics.set('t', { retentionMs: 5000 });
    await expect(p.ensure('t', wanted)).resolves.toMatchObject({ action: 'verified' });
    expect(f.calls.describe).toBe(2);
  });

  it('force re-decides an ensured topic (configureTopic)', async () => {
    const f = fakeAdmin(existing);
    const { p } = provisioner(f.admin, 'createOrUpdate', 'fail');
    await p.ensure('t', opts({ retentionMs: 1000 }));
    await expect(p.ensure('t', wanted, {}, true)).resolves.toMatchObject({ action: 'updated' });
    expect(f.calls.describe).toBe(2);
  });
});
