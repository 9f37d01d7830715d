/**
 * What monitoring evaluates on a clock rather than on a probe or a sample: the job rules (their
 * window slides even when no event arrives) and the retention of received events.
 */
import { receivedEvents } from '@db/schema/monitor.ts';
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { createWorkerLoop, type LoopControl } from '@shared/worker-loop.ts';
import { lt } from 'drizzle-orm';
import type { AlertEngine } from './alert-engine.ts';

export function createPeriodicChecks(deps: {
  db: Db;
  engine: Pick<AlertEngine, 'evaluateJobs'>;
  logger: Logger;
  intervalMs: number;
  /** Received events older than this are deleted (the job rules look back an hour or so). */
  eventRetentionMs: number;
  now?: () => number;
}): LoopControl & { runOnce(): Promise<void> } {
  const now = deps.now ?? Date.now;
  async function runOnce() {
    await deps.engine.evaluateJobs();
    await deps.db.delete(receivedEvents).where(lt(receivedEvents.receivedAt, new Date(now() - deps.eventRetentionMs)));
  }
  const loop = createWorkerLoop({ name: 'periodic-checks', logger: deps.logger, intervalMs: deps.intervalMs, round: runOnce });
  return { runOnce, start: () => loop.start(), stop: () => loop.stop() };
}
