/** CumulativeAcks without a broker: which ack-all it sends, and when it must not. */
import { describe, expect, it } from 'vitest';
import { NO_DRIVER_HOOKS } from '@busline/core';
import { CumulativeAcks } from '../src/index.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function harness() {
  const sent: string[] = [];
  const counts: Record<string, number> = {};
  const acks = new CumulativeAcks({
    send: (reply, payload) => sent.push(`${dec.decode(payload)} ${dec.decode(reply)}`),
    schedule: () => undefined,
    hooks: { ...NO_DRIVER_HOOKS, count: (name, by = 1) => void (counts[name] = (counts[name] ?? 0) + by) },
  });
  const reply = (seq: number, dc = 1) => enc.encode(`$JS.ACK.S.C.${dc}.${seq}.${seq}.0.0`);
  return { acks, sent, counts, reply };
}

describe('CumulativeAcks', () => {
  it('acknowledges the watermark once, with the reply subject of the message at it', () => {
    const { acks, sent, reply } = harness();
    acks.pretrack(0, 0, () => false);
    const d = [1, 2, 3, 4].map((seq) => ({ seq }));
    for (const x of d) expect(acks.admit(x.seq, reply(x.seq), x)).toBe(true);
    acks.complete(2, d[1]!);
    acks.complete(3, d[2]!);
    acks.flush();
    expect(sent, 'nothing while 1 is open').toEqual([]);
    acks.complete(1, d[0]!);
    acks.flush();
    expect(sent).toEqual(['+ACK $JS.ACK.S.C.1.3.3.0.0']);
    acks.flush();
    expect(sent).toHaveLength(1);
  });

  it('a nacked position blocks the watermark until its redelivery is settled; the redelivery reply is used', () => {
    const { acks, sent, reply } = harness();
    acks.pretrack(0, 0, () => false);
    const a = { seq: 1 };
    const b = { seq: 2 };
    acks.admit(1, reply(1), a);
    acks.admit(2, reply(2), b);
    expect(acks.nacked(1, a)).toBe(true);
    acks.complete(2, b);
    acks.flush();
    expect(sent).toEqual([]);
    const again = { seq: 1 };
    expect(acks.admit(1, reply(1, 2), again), 'the redelivery is handed out').toBe(true);
    acks.complete(1, again);
    acks.flush();
    expect(sent).toEqual(['+ACK $JS.ACK.S.C.1.2.2.0.0']);
  });

  it('does not hand out a redelivery of a message still being handled, nor one already settled', () => {
    const { acks, reply, counts } = harness();
    acks.pretrack(0, 0, () => false);
    const a = { seq: 1 };
    const b = { seq: 2 };
    acks.admit(1, reply(1), a);
    acks.admit(2, reply(2), b);
    expect(acks.admit(1, reply(1, 2), { seq: 1 })).toBe(false);
    acks.complete(2, b);
    expect(acks.admit(2, reply(2, 2), { seq: 2 })).toBe(false);
    expect(counts.redelivered_while_handled).toBe(1);
    expect(counts.redelivered_settled).toBe(1);
  });

  it('leftovers of an earlier bus block acks until redelivered and settled, or resolved as gone', () => {
    const { acks, sent, reply } = harness();
    // The server says: ack floor 10, delivered up to 14, 13 no longer exists.
    acks.pretrack(10, 14, (seq) => seq !== 13);
    expect(acks.leftovers).toBe(3);
    const fresh = { seq: 15 };
    acks.admit(15, reply(15), fresh);
    acks.complete(15, fresh);
    acks.flush();
    expect(sent, 'no ack-all past unhandled leftovers').toEqual([]);
    for (const seq of [11, 12]) {
      const d = { seq };
      expect(acks.admit(seq, reply(seq, 2), d)).toBe(true);
      acks.complete(seq, d);
    }
    acks.flush();
    expect(sent).toEqual(['+ACK $JS.ACK.S.C.2.12.12.0.0']);
    expect(acks.leftovers).toBe(1);
    // 14 is never redelivered: the server's ack floor passed it (another member acked it).
    expect(acks.resolveLeftovers(14, () => true)).toBe(1);
    acks.flush();
    expect(sent.at(-1)).toBe('+ACK $JS.ACK.S.C.1.15.15.0.0');
  });

  it('a delivery below everything tracked (another bus\'s) blocks every ack-all until settled', () => {
    const { acks, sent, reply } = harness();
    acks.pretrack(0, 0, () => false);
    const own = { seq: 5 };
    acks.admit(5, reply(5), own);
    const stray = { seq: 3 };
    expect(acks.admit(3, reply(3), stray)).toBe(true);
    acks.complete(5, own);
    acks.flush();
    expect(sent).toEqual([]);
    acks.complete(3, stray);
    acks.flush();
    expect(sent).toEqual(['+ACK $JS.ACK.S.C.1.3.3.0.0', '+ACK $JS.ACK.S.C.1.5.5.0.0']);
  });
});
