import { Buffer } from 'node:buffer';
import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

/**
 * Event ids: UUIDv7 (RFC 9562), monotonic within the process, one per publish.
 *
 * The uuid package writes the 16 bytes. Two things around it are ours, both
 * for the publish path's CPU (profiled: id making was 7 % of `bus.publish`):
 * - randomness comes from a 4 KiB pool refilled by one `randomFillSync` per
 *   256 ids (uuid refills its 256-byte pool every 16 ids, and each refill
 *   costs far more than its bytes). Passing our random bytes means passing
 *   the time and counter as well, so the monotonic state uuid keeps for
 *   `v7()` without options is kept here, by the same rule (RFC 9562 §6.2,
 *   method 1: a counter seeded randomly each new millisecond, bumped within
 *   one, carrying into the millisecond when it wraps);
 * - the bytes are formatted here as one flat string, because the
 *   concatenated string uuid returns costs several times more wherever it is
 *   used later (a Map key in dedupe windows, a header value).
 */
const pool = new Uint8Array(4096);
let poolAt = pool.length;
const state = { msecs: -Infinity, seq: 0 };

/** The next 16 random bytes of the pool (a view: used before the next call). */
function random16(): Uint8Array {
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += 16;
  return pool.subarray(poolAt - 16, poolAt);
}

/** ASCII codes of each byte's two lower-case hex digits. */
const HEX_HIGH = new Uint8Array(256);
const HEX_LOW = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  const hex = (i + 0x100).toString(16);
  HEX_HIGH[i] = hex.charCodeAt(1);
  HEX_LOW[i] = hex.charCodeAt(2);
}
/** The id being written, as ASCII hex with dashes at 8, 13, 18 and 23. */
const idText = Buffer.alloc(36, 0x2d /* - */);
const idBytes = new Uint8Array(16);
/** Where each of the 16 bytes goes in the text. */
const ID_HEX_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** The id buffer as a string: Buffer's own latin1Slice where present (toString's dispatch costs as much again). */
const idString: () => string =
  typeof (idText as unknown as { latin1Slice?: unknown }).latin1Slice === 'function'
    ? () => (idText as unknown as { latin1Slice(start: number, end: number): string }).latin1Slice(0, 36)
    : () => idText.toString('latin1', 0, 36);

/** A new event id: a UUIDv7, greater than every id this process made before. */
export function newEventId(): string {
  const random = random16();
  const now = Date.now();
  if (now > state.msecs) {
    state.seq = (random[6]! << 23) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
    state.msecs = now;
  } else {
    state.seq = (state.seq + 1) | 0;
    if (state.seq === 0) state.msecs++;
  }
  uuidv7({ random, msecs: state.msecs, seq: state.seq }, idBytes);
  for (let i = 0; i < 16; i++) {
    const at = ID_HEX_AT[i]!;
    const byte = idBytes[i]!;
    idText[at] = HEX_HIGH[byte]!;
    idText[at + 1] = HEX_LOW[byte]!;
  }
  return idString();
}
