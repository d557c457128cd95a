import { z } from 'zod';

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

export type RetryOptionsInput = z.input<typeof retryOptionsSchema>;
export type RetryPolicy = z.output<typeof retryOptionsSchema>;

/** Delay before the attempt after `attempt` (1-based): exponential, capped, jittered. */
export function retryDelay(policy: RetryPolicy, attempt: number): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (attempt - 1));
  if (policy.jitter === 0) return Math.round(base);
  const spread = base * policy.jitter;
  return Math.max(0, Math.round(base - spread + Math.random() * 2 * spread));
}

/** Resolves after `ms`, or early (with false) when `signal` aborts. No timer survives an abort. */
export function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
