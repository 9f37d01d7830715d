/**
 * The schedule of the platform's health probers (the registry's prober of imputation servers,
 * monitoring's prober of the platform's own services): a first round soon after start, then one every
 * interval ± jitter; a failed round is logged by the loop, not fatal. What a round probes and stores is
 * the prober's own.
 */
import type { Logger } from './log.ts';
import { createWorkerLoop, type LoopControl } from './worker-loop.ts';

/** The scheduling part of a prober's dependencies. */
export interface ProbeScheduleOptions {
  intervalMs: number;
  /** Fraction of `intervalMs` each wait may vary by, so replicas and probed servers do not fall into step; default 0.1. */
  jitter?: number;
  /** Delay before the first round after `start()`; default 1 s, or `intervalMs` when shorter (lets the platform finish starting). */
  initialDelayMs?: number;
  random?: () => number;
}

/** A loop running `probeAll` on the probers' schedule; `name` names it in logs. Nothing runs until `start()`. */
export function createProbeLoop(name: string, logger: Logger, schedule: ProbeScheduleOptions, probeAll: () => Promise<unknown>): LoopControl {
  return createWorkerLoop({
    name,
    logger,
    intervalMs: schedule.intervalMs,
    jitter: schedule.jitter ?? 0.1,
    initialDelayMs: schedule.initialDelayMs ?? Math.min(1_000, schedule.intervalMs),
    random: schedule.random,
    round: async () => {
      await probeAll();
    },
  });
}
