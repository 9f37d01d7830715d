/**
 * When the worker looks at a job next. Polls start frequent (a job that fails validation fails within
 * seconds) and back off to a cap (a six-hour run is looked at a few times an hour, not every 30 s as
 * the original did); transient failures back off exponentially with jitter so replicas retrying the
 * same broken server do not fall into step. Pure arithmetic: the worker stores the answer in
 * `next_poll_at` and never sleeps inside a claim.
 */

export interface PollSchedule {
  /** Delay before the next status poll, given how many polls the job had since its last state change. */
  pollDelayMs(pollsSinceChange: number): number;
  /** Delay before retrying after `attempts` transient failures in a row (1 = the first failure). */
  retryDelayMs(attempts: number): number;
  /** Transient failures in a row after which a job gives up. */
  readonly maxAttempts: number;
  /**
   * Delay before trying to submit again when the user already has the server's maximum of active jobs,
   * given how often the job was deferred so already (0 = the first time): doubled per deferral up to a
   * cap. A job that ends wakes the user's next waiting job at once (job-transitions.ts), so this is the
   * fallback for slots freed elsewhere, and the back-off keeps a user's long queue from being claimed
   * over and over only to be deferred again.
   */
  busyDelayMs(deferrals?: number): number;
  /** Delay between looks at a job whose cancellation the server has not confirmed yet. */
  readonly cancelPollMs: number;
}

export interface PollScheduleOptions {
  /** First poll after a submission or a state change; default 5 s. */
  firstPollMs?: number;
  /** Cap on the poll interval; default 5 min. */
  maxPollMs?: number;
  /** First retry after a transient failure; default 5 s. */
  retryBaseMs?: number;
  /** Cap on the retry delay; default 10 min. */
  retryMaxMs?: number;
  /** Default 10 (about 40 minutes of a server being down with the defaults). */
  maxAttempts?: number;
  /** First busy deferral; default 30 s. */
  busyDelayMs?: number;
  /** Cap on the busy deferral; default 8 × `busyDelayMs`. */
  busyMaxMs?: number;
  /** Default 5 s. */
  cancelPollMs?: number;
  /** Fraction each delay may vary by (0 to 1); default 0.2. */
  jitter?: number;
  random?: () => number;
}

/** Builds a schedule; every delay is doubled per step from its base and capped. */
export function createPollSchedule(options: PollScheduleOptions = {}): PollSchedule {
  const firstPollMs = options.firstPollMs ?? 5_000;
  const maxPollMs = options.maxPollMs ?? 300_000;
  const retryBaseMs = options.retryBaseMs ?? 5_000;
  const retryMaxMs = options.retryMaxMs ?? 600_000;
  const busyBaseMs = options.busyDelayMs ?? 30_000;
  const jitter = Math.min(Math.max(options.jitter ?? 0.2, 0), 1);
  const random = options.random ?? Math.random;
  const jittered = (ms: number) => Math.max(0, Math.round(ms * (1 + jitter * (2 * random() - 1))));
  // 2 ** n overflows to Infinity for large n; the cap applies either way.
  const doubling = (base: number, steps: number, cap: number) => Math.min(cap, base * 2 ** Math.max(0, Math.min(steps, 40)));
  return {
    pollDelayMs: (polls) => jittered(doubling(firstPollMs, polls, maxPollMs)),
    retryDelayMs: (attempts) => jittered(doubling(retryBaseMs, attempts - 1, retryMaxMs)),
    maxAttempts: options.maxAttempts ?? 10,
    busyDelayMs: (deferrals = 0) => jittered(doubling(busyBaseMs, deferrals, options.busyMaxMs ?? busyBaseMs * 8)),
    cancelPollMs: options.cancelPollMs ?? 5_000,
  };
}
