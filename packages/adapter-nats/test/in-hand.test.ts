import { describe, expect, it } from 'vitest';
import { InHand } from '../src/in-hand.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('InHand', () => {
  it('whenSettled resolves once the last message in hand is released', async () => {
    const inHand = new InHand();
    inHand.add(1);
    inHand.add(2);
    let settled = false;
    const waiting = inHand.whenSettled().then(() => (settled = true));
    inHand.release(1);
    await Promise.resolve();
    expect(settled).toBe(false);
    inHand.release(2);
    await waiting;
    expect(settled).toBe(true);
  });

  it('naks go out at once while running; once held, they go out sorted, and none past the first message still in hand', () => {
    const inHand = new InHand();
    expect(inHand.holdNak(5, bytes('r5'), bytes('-NAK'))).toBe(false);
    inHand.startHoldingNaks();
    inHand.add(7); // still being handled when the naks are released
    for (const seq of [9, 3, 6, 8]) expect(inHand.holdNak(seq, bytes(`r${seq}`), bytes('-NAK'))).toBe(true);
    const sent: string[] = [];
    const skipped = inHand.releaseNaks((reply) => sent.push(new TextDecoder().decode(reply)));
    expect(sent).toEqual(['r3', 'r6']);
    expect(skipped).toBe(2);
    expect(inHand.hasHeldNaks).toBe(false);
  });
});
