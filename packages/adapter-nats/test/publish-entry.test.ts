/** takeOverdue without a broker: which in-flight publishes are sent again, and how far it scans. */
import { describe, expect, it } from 'vitest';
import { INFLIGHT, takeOverdue, type Entry } from '../src/publish-entry.js';

const RESEND_MS = 1_000;

function entry(token: number, sentAt: number, more: Partial<Entry> = {}): Entry {
  return {
    state: INFLIGHT,
    token,
    sentAt,
    resends: 0,
    subject: 't',
    topic: 't',
    body: new Uint8Array(0),
    headers: {},
    msgId: `m${token}`,
    hlen: 0,
    deadline: Number.MAX_SAFE_INTEGER,
    timeoutMs: 30_000,
    batch: { outcomes: [], remaining: 1, resolve() {} },
    index: 0,
    retryAt: 0,
    unavailable: false,
    ...more,
  };
}

/** The entries in order, counting how many the scan looked at. */
function counted(entries: Entry[]): { entries: Iterable<Entry>; visited: () => number } {
  let visited = 0;
  return {
    entries: (function* () {
      for (const e of entries) {
        visited++;
        yield e;
      }
    })(),
    visited: () => visited,
  };
}

describe('takeOverdue', () => {
  it('takes what is due, counts a resend on each, and skips what waits for a 503 retry', () => {
    const now = 100_000;
    const due = entry(1, now - RESEND_MS);
    const waitingRetry = entry(2, now - 5 * RESEND_MS, { retryAt: now + 50, unavailable: true });
    const resentOnce = entry(3, now - RESEND_MS, { resends: 1 }); // waits 2 s now
    const notDue = entry(4, now - 10);
    const behind = entry(5, now - 5);
    const scan = counted([due, waitingRetry, resentOnce, notDue, behind]);
    expect(takeOverdue(scan.entries, now, RESEND_MS)).toEqual([due]);
    expect(due.resends).toBe(1);
    expect(waitingRetry.resends).toBe(0);
    expect(scan.visited(), 'stops at the first never re-sent message that is not due').toBe(4);
  });

  it('a message sent again after a 503 at the head does not make every sweep scan the whole window', () => {
    const now = 100_000;
    // Re-sent 10 ms ago after a "no responders" retry: its sentAt is later than those behind it.
    const retried = entry(1, now - 10, { retryAt: now - 10, unavailable: true });
    const rest = Array.from({ length: 10_000 }, (_, i) => entry(i + 2, now - 20));
    const scan = counted([retried, ...rest]);
    expect(takeOverdue(scan.entries, now, RESEND_MS)).toEqual([]);
    expect(scan.visited()).toBe(2);
  });

  it('every message sent again ahead of the first never re-sent one is checked', () => {
    const now = 100_000;
    const a = entry(1, now - 3 * RESEND_MS, { resends: 1 }); // due after 2 s: due
    const b = entry(2, now - 10, { retryAt: now - 10 }); // re-sent after a 503, not due
    const c = entry(3, now - 2 * RESEND_MS); // never re-sent, due
    const d = entry(4, now - 10); // never re-sent, not due: the scan ends here
    const e = entry(5, now - 5 * RESEND_MS, { resends: 2 }); // unreachable in practice (sent after d)
    const scan = counted([a, b, c, d, e]);
    expect(takeOverdue(scan.entries, now, RESEND_MS)).toEqual([a, c]);
    expect(scan.visited()).toBe(4);
  });
});
