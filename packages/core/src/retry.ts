import { z } from 'zod';

/**
 * The `retry` options (config defaults and per subscription): attempts, backoff, and where retries
 * wait.
 */
export const retryOptionsSchema = z
  .object({
    /** Handler attempts before the message is dead-lettered (1 = no retry). */
    maxAttempts: z.number().int().min(1).default(5),
    initialDelayMs: z.number().int().min(0).default(100),
    maxDelayMs: z.number().int().min(0).default(30_000),
    multiplier: z.number().min(1).default(2),
    /** Fraction of each delay that is randomized, so retries of many messages spread out. */
    jitter: z.number().min(0).max(1).default(0.2),
    /**
     * `inProcess` (default): core waits and calls the handler again while the
     * message's key stays blocked, so per-key order holds across retries.
     * `broker`: the message is nacked with the delay and the broker redelivers
     * it (frees the consumer; later messages of the same key may overtake it).
     * Needs an adapter with `nativeRedeliveryDelay`.
     */
    redelivery: z.enum(['inProcess', 'broker']).default('inProcess'),
  })
  .strict();

/** The `retry` options as written (each optional). */
export type RetryOptionsInput = z.input<typeof retryOptionsSchema>;
/** The `retry` options after defaults: what a subscription retries with. */
export type RetryPolicy = z.output<typeof retryOptionsSchema>;

/** Delay before the attempt after `attempt` (1-based): exponential, capped, jittered. */
export function retryDelay(policy: RetryPolicy, attempt: number): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (attempt - 1));
  if (policy.jitter === 0) return Math.round(base);
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + Math.random() * 2 * spread));
}

/**
 * Every backoff wait of one owner (a subscription), cancelled together. One
 * abort listener for the owner instead of one per waiting message, so a
 * thousand messages in backoff add nothing to a shared signal.
 */
export class BackoffTimers {
  private readonly waiting = new Map<ReturnType<typeof setTimeout>, (ran: boolean) => void>();
  private cancelled = false;

  /** Resolves true after `ms`, or false at once / early once `cancelAll` was called. */
  sleep(ms: number): Promise<boolean> {
    if (this.cancelled) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(timer);
        resolve(true);
      }, ms);
      this.waiting.set(timer, resolve);
    });
  }

  /** Ends every wait (now and later) with false. */
  cancelAll(): void {
    this.cancelled = true;
    this.cancelWaiting();
  }

  /** Ends the waits pending now with false; later ones run their time. */
  cancelWaiting(): void {
    for (const [timer, resolve] of this.waiting) {
      clearTimeout(timer);
      resolve(false);
    }
    this.waiting.clear();
  }

  /** Backoff waits pending now. */
  get size(): number {
    return this.waiting.size;
  }
}
