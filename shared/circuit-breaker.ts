/**
 * A circuit breaker per key (an external server's slug in job-processor, an upstream service in the
 * gateway): after `threshold` transient failures in a row the key is left alone for `coolDownMs` —
 * callers defer or fail fast instead of waiting on it — then one probe is let through (half-open); its
 * success closes the circuit, its failure opens it again.
 *
 * State lives in memory, per process: each replica learns on its own that a target is down (after
 * `threshold` failures of its own), which costs a few extra calls to a broken target but needs no
 * shared state and cannot wedge every replica on a stale flag.
 */

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreaker {
  /**
   * Whether a call to `key` may go ahead now. Once the cool-down has passed exactly one caller gets
   * `true` (the probe) until it reports back, or until another cool-down passes without a report.
   */
  allow(key: string): boolean;
  /** The server answered (any answer that is not a transient failure): closes the circuit. */
  success(key: string): void;
  /** A transient failure (network, timeout, 5xx, maintenance). */
  failure(key: string): void;
  state(key: string): CircuitState;
  /**
   * How long a deferred caller should wait before asking again: the rest of the cool-down, or, while a
   * probe is out, `probeWaitMs` (the probe's answer decides soon).
   */
  retryInMs(key: string): number;
}

export interface CircuitBreakerOptions {
  /** Transient failures in a row that open the circuit; default 5. */
  threshold?: number;
  /** How long an open circuit defers calls; default 60 s. */
  coolDownMs?: number;
  /** Wait suggested to callers while a probe is out; default 5 s (capped by the cool-down). */
  probeWaitMs?: number;
  now?: () => number;
}

interface Circuit {
  failures: number;
  /** When the circuit opened; null while closed. */
  openedAt: number | null;
  /** When the probe now out was let through; null when none is. */
  probeAt: number | null;
}

export function createCircuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreaker {
  const threshold = Math.max(1, options.threshold ?? 5);
  const coolDownMs = options.coolDownMs ?? 60_000;
  const probeWaitMs = Math.min(options.probeWaitMs ?? 5_000, coolDownMs);
  const now = options.now ?? Date.now;
  const circuits = new Map<string, Circuit>();

  // A probe whose caller never reported (it crashed) must not keep the circuit shut: after a full
  // cool-down it counts as lost and the next caller probes instead.
  const probeOut = (c: Circuit) => c.probeAt !== null && now() - c.probeAt < coolDownMs;
  const probeDue = (c: Circuit) => c.openedAt !== null && now() - c.openedAt >= coolDownMs && !probeOut(c);

  return {
    allow(key) {
      const c = circuits.get(key);
      if (!c || c.openedAt === null) return true;
      if (!probeDue(c)) return false;
      c.probeAt = now();
      return true;
    },
    success(key) {
      circuits.delete(key);
    },
    failure(key) {
      let c = circuits.get(key);
      if (!c) circuits.set(key, (c = { failures: 0, openedAt: null, probeAt: null }));
      c.failures += 1;
      if (c.probeAt !== null) {
        // The probe failed: a new cool-down starts.
        c.openedAt = now();
        c.probeAt = null;
      } else if (c.openedAt === null && c.failures >= threshold) c.openedAt = now();
    },
    state(key) {
      const c = circuits.get(key);
      if (!c || c.openedAt === null) return 'closed';
      return probeOut(c) || probeDue(c) ? 'half-open' : 'open';
    },
    retryInMs(key) {
      const c = circuits.get(key);
      if (!c || c.openedAt === null) return 0;
      if (probeOut(c)) return probeWaitMs;
      return Math.max(0, coolDownMs - (now() - c.openedAt));
    },
  };
}
