/** The least a driver gets to close (final commit, goodbyes), even when handlers used the whole bound. */
const DRIVER_CLOSE_FLOOR_MS = 1_000;
/** How long past its bound core still waits for a driver's close before leaving it behind. */
const DRIVER_CLOSE_GRACE_MS = 1_000;

/** What a driver's close step gets of a close that ends at `deadline` (epoch ms): what is left, at least DRIVER_CLOSE_FLOOR_MS. */
export function driverBudget(deadline: number): number {
  return Math.max(deadline - Date.now(), DRIVER_CLOSE_FLOOR_MS);
}

/**
 * Waits for a driver's close step (a consumer's stop or close, the driver's close) its budget plus
 * DRIVER_CLOSE_GRACE_MS; resolves to that bound when the step was left behind, undefined when it
 * ended in time. Core's guard that a hung broker cannot hold close for its client's timeouts.
 */
export async function leftBehind(step: Promise<unknown>, budgetMs: number): Promise<number | undefined> {
  const bound = budgetMs + DRIVER_CLOSE_GRACE_MS;
  return (await CloseDeadline.in(bound).within(step, 'a driver step')) ? undefined : bound;
}

/** How often a step waiting on a stopped deadline looks again. */
const PAUSED_RECHECK_MS = 100;

/**
 * The bound on a close: each step that waits on the broker (a final commit
 * or acknowledgement flush, leaving a group, a producer's goodbye) stops
 * waiting at the deadline, and the steps given up on are named so close can
 * say what it left behind. A broker client without cancellation runs a step
 * given up on to its own request timeout in the background.
 */
export class CloseDeadline {
  private readonly late: string[] = [];
  private paused = 0;

  constructor(private at: number) {}

  /** A deadline `ms` from now. */
  static in(ms: number): CloseDeadline {
    return new CloseDeadline(Date.now() + ms);
  }

  /**
   * Runs `work` that has a bound of its own (a drain of running handlers) with the deadline
   * stopped: the time it takes is not the broker's, and no step gives up meanwhile.
   */
  async excluding<T>(work: Promise<T>): Promise<T> {
    const start = Date.now();
    this.paused++;
    try {
      return await work;
    } finally {
      this.paused--;
      this.at += Date.now() - start;
    }
  }

  /** Milliseconds left (0 once past). */
  get remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  /** The steps given up on, in order. */
  get abandoned(): readonly string[] {
    return this.late;
  }

  /** Waits for `step` until the deadline; false (and `what` noted) when it was given up on. A step that fails has ended. */
  async within(step: Promise<unknown>, what: string): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = step.then(
      () => true,
      () => true,
    );
    // Re-armed while the deadline is stopped or was moved meanwhile (excluding).
    const past = new Promise<false>((resolve) => {
      const arm = () => (timer = setTimeout(() => (this.paused > 0 || this.remainingMs > 0 ? arm() : resolve(false)), this.paused > 0 ? PAUSED_RECHECK_MS : this.remainingMs));
      arm();
    });
    try {
      const done = await Promise.race([ended, past]);
      if (!done) this.late.push(what);
      return done;
    } finally {
      clearTimeout(timer);
    }
  }
}
