/**
 * The retry delay of the platform's durable queues (outbox relay, email and webhook senders): capped
 * exponential backoff with equal jitter. Half the capped delay is fixed, so a retry never comes
 * back at once; the other half is random, so many rows (or replicas) failing together spread out
 * instead of retrying in step.
 */

export interface BackoffOptions {
  /** The delay after the first failed attempt, before jitter. */
  baseMs: number;
  /** No delay exceeds this. */
  maxMs: number;
  /** How much each further failed attempt multiplies the delay by; default 2. */
  factor?: number;
  /** A number in [0, 1); default `Math.random`. Tests pass a fixed one. */
  random?: () => number;
}

/**
 * How long to wait after failed attempt number `attempt` (1 for the first failure): between half
 * and all of `min(maxMs, baseMs × factor^(attempt − 1))`, in whole milliseconds.
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const factor = options.factor ?? 2;
  const random = options.random ?? Math.random;
  const capped = Math.min(options.maxMs, options.baseMs * factor ** Math.max(0, attempt - 1));
  return Math.round(capped / 2 + random() * (capped / 2));
}
