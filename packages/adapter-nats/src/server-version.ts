/**
 * Which nats-server versions this adapter runs on, and the first version with
 * each server feature it uses where the server has it (the driver checks the
 * server's version against them at connect).
 */

/** The oldest nats-server this adapter supports (CI runs the NATS suite on it: `pnpm test:nats-min`). */
export const MINIMUM_SERVER = '2.9.0';

/** True for a server version at or above MINIMUM_SERVER ("2.10.3", "2.12.0-RC.1"). */
export function serverSupported(version: string, minimum = MINIMUM_SERVER): boolean {
  const have = version.split(/[.-]/).slice(0, 3).map(Number);
  const need = minimum.split('.').map(Number);
  if (have.length < 3 || have.some((n) => !Number.isInteger(n))) return false;
  for (let i = 0; i < 3; i++) if (have[i] !== need[i]) return have[i]! > need[i]!;
  return true;
}

/** The first server with fast-ingest batch publishing (`allow_batched`, ADR-50). */
export const FAST_BATCH_SERVER = '2.14.0';
/** The first server with atomic batch publishing (`allow_atomic`, ADR-50). */
export const ATOMIC_BATCH_SERVER = '2.12.0';

/** The first server that pins consumers (priority groups): partitioned groups and key affinity across members. */
export const PINNING_SERVER = '2.11.0';
