/**
 * The kit's background loop (DESIGN §4.8): rounds run one at a time, each scheduled when the previous
 * one has finished (never a bare `setInterval`, so a slow round cannot pile up behind itself), and
 * `stop()` schedules nothing more and waits for the round in flight, so a SIGTERM lets work finish.
 * The domain work (claiming, probing, deleting) stays with the caller's `round`.
 */
import type { Logger } from './log.ts';

/** The timer functions the loop uses; tests pass fakes to fire rounds without waiting. */
export interface LoopTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface WorkerLoopOptions {
  /** Names the loop in its logs (`<name> round failed`). */
  name: string;
  logger: Logger;
  /** Wait between the end of one round and the start of the next. */
  intervalMs: number;
  /** Fraction of `intervalMs` each wait may vary by (0 to 1), so replicas do not fall into step; default 0. */
  jitter?: number;
  /** Wait before the first round after `start()`, not jittered; default `intervalMs`. */
  initialDelayMs?: number;
  random?: () => number;
  /** One round of work. Resolving to `'again'` (e.g. after a full batch) runs the next round at once. */
  round: () => Promise<'again' | void>;
  timers?: LoopTimers;
}

export interface WorkerLoop {
  /** Schedules the first round after `initialDelayMs`; does nothing while already started. */
  start(): void;
  /** Starts no new rounds and resolves once the round in flight (if any) has finished. */
  stop(): Promise<void>;
  /** Runs a round soon instead of after the interval; during a round, runs another right after it. Ignored unless started. */
  wake(): void;
  /** True between `start()` and `stop()`. */
  readonly running: boolean;
}

/** What a worker built on a loop hands its service: `start()` at startup, `stop()` on SIGTERM. */
export type LoopControl = Pick<WorkerLoop, 'start' | 'stop'>;

const realTimers: LoopTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Builds a loop; nothing runs until `start()`. A round that throws is logged and the loop goes on. */
export function createWorkerLoop(options: WorkerLoopOptions): WorkerLoop {
  const { name, logger, intervalMs } = options;
  const timers = options.timers ?? realTimers;
  const random = options.random ?? Math.random;
  const jitter = Math.min(Math.max(options.jitter ?? 0, 0), 1);
  const initialDelayMs = options.initialDelayMs ?? intervalMs;

  let active = false;
  let timer: unknown;
  let inFlight: Promise<void> | undefined;
  let wakeRequested = false;

  function cancel() {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  }

  function schedule(delayMs: number) {
    cancel();
    timer = timers.setTimeout(fire, delayMs);
    // The HTTP server keeps the process alive; a pending round alone must not.
    (timer as { unref?: () => void } | undefined)?.unref?.();
  }

  function fire() {
    // No timer is pending while a round runs or after stop(), so this never overlaps a round.
    timer = undefined;
    wakeRequested = false;
    // `.then` runs after the assignment even when `round` throws synchronously.
    inFlight = runRound().then((again) => {
      inFlight = undefined;
      // Stopped meanwhile: nothing more. Restarted meanwhile: only this schedules, so a restart
      // during a round never leaves two rounds going.
      if (!active) return;
      schedule(again || wakeRequested ? 0 : intervalMs * (1 + jitter * (2 * random() - 1)));
    });
  }

  /** Runs the caller's round; true when it asked for the next one at once. Never rejects. */
  async function runRound(): Promise<boolean> {
    try {
      return (await options.round()) === 'again';
    } catch (err) {
      logger.error(`${name} round failed`, { loop: name, error: errorText(err) });
      return false;
    }
  }

  return {
    start() {
      if (active) return;
      active = true;
      // A round from before a stop() still in flight schedules the next one when it ends.
      if (!inFlight) schedule(initialDelayMs);
    },
    async stop() {
      active = false;
      wakeRequested = false;
      cancel();
      await inFlight;
    },
    wake() {
      if (!active) return;
      if (inFlight) wakeRequested = true;
      else schedule(0);
    },
    get running() {
      return active;
    },
  };
}

/**
 * An error as one log-safe line. drizzle puts a failed query's parameters (user data, token hashes)
 * into its message after `\nparams:`; that part is cut off.
 */
export function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message.split('\nparams:')[0]}`;
  return String(err);
}
