import { patchKafkajsPrototype } from './kafkajs-internals.js';

/**
 * kafkajs 2.2.4 can spin for ever, with the event loop blocked, when a
 * consumer is stopped while its fetchers are being rebuilt.
 *
 * FetchManager.start() rebuilds its fetchers (one per broker) when one of
 * them finds that the cluster's set of brokers changed: it stops them all,
 * waits for each in-flight fetch to return (up to the fetch long-poll), then
 * creates new ones — without asking whether the runner still runs. When
 * Runner.stop() comes in that window it sets `running` to false and stops the
 * fetchers it finds, the old ones; the new ones are never stopped. Each loops
 * on Runner.fetch, which for a runner that does not run returns [] at once,
 * without any I/O: a loop of microtasks only, so no timer, socket or signal
 * handler of the process runs again. Runner.stop() itself waits for the fetch
 * manager to return, so consumer.disconnect() never resolves. Seen in a member
 * process of the 3-node cluster test (kill -9 of a broker, then SIGTERM): the
 * bus never closed and the process used half a core until it was killed, even
 * after its parent was gone (the IPC "disconnect" handler never ran).
 *
 * This wraps Runner.prototype.fetch, once, when the adapter loads: a fetch of
 * a runner that no longer runs first stops the fetch manager's current
 * fetchers, so each fetcher loop ends after that fetch and Runner.stop()
 * completes. In kafkajs's own order of stopping the fetchers are stopped
 * already and this changes nothing. If the module moved (another kafkajs
 * version), nothing is patched and `applyKafkajsStopFix` returns false.
 */
interface RunnerLike {
  running: boolean;
  fetchManager?: { stop(): Promise<void> };
  fetch(nodeId: number): Promise<unknown[]>;
}

const PATCHED = Symbol.for('busline.kafkajs.stopFix');

export function applyKafkajsStopFix(): boolean {
  return patchKafkajsPrototype<RunnerLike>('consumer/runner.js', PATCHED, ['fetch'], (proto) => {
    const original = proto.fetch;
    proto.fetch = function (this: RunnerLike, nodeId: number): Promise<unknown[]> {
      // Not awaited: it resolves once the calling fetcher's loop has ended, after this fetch returns.
      if (!this.running) void this.fetchManager?.stop().catch(() => undefined);
      return original.call(this, nodeId);
    };
  });
}
