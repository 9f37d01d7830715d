/**
 * Retention: files past their `expires_at` are deleted (row, then bytes) unless a job holds them;
 * temporary files abandoned by crashed uploads are swept. A loop with an injectable clock and a stop
 * signal (DESIGN §4.8); each round logs how much space it freed.
 */
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { createWorkerLoop, type LoopControl } from '@shared/worker-loop.ts';
import { fileHolds, storedFiles } from '@db/schema/files.ts';
import { and, eq, inArray, isNotNull, lte, notExists } from 'drizzle-orm';
import type { FileStorage } from './storage.ts';

export interface RetentionRound {
  deleted: number;
  freedBytes: number;
  temporaryRemoved: number;
}

/** Once started, runs rounds every `intervalMs` until `stop()`; a failed round is logged, not fatal. */
export interface RetentionWorker extends LoopControl {
  runOnce(): Promise<RetentionRound>;
}

export function createRetentionWorker(deps: {
  db: Db;
  storage: FileStorage;
  logger: Logger;
  intervalMs: number;
  /** Temporary files older than this are leftovers of dead uploads. */
  temporaryMaxAgeMs?: number;
  batchSize?: number;
  now?: () => number;
}): RetentionWorker {
  const now = deps.now ?? Date.now;
  const batchSize = deps.batchSize ?? 500;

  async function runOnce(): Promise<RetentionRound> {
    const round: RetentionRound = { deleted: 0, freedBytes: 0, temporaryRemoved: 0 };
    for (;;) {
      const expired = await deps.db
        .select({ id: storedFiles.id, storageKey: storedFiles.storageKey, sizeBytes: storedFiles.sizeBytes })
        .from(storedFiles)
        .where(
          and(
            isNotNull(storedFiles.expiresAt),
            lte(storedFiles.expiresAt, new Date(now())),
            notExists(deps.db.select().from(fileHolds).where(eq(fileHolds.fileId, storedFiles.id))),
          ),
        )
        .limit(batchSize);
      if (expired.length === 0) break;
      // The hold check is repeated in the delete so a hold taken meanwhile still protects the file.
      const deleted = await deps.db
        .delete(storedFiles)
        .where(
          and(
            inArray(
              storedFiles.id,
              expired.map((f) => f.id),
            ),
            notExists(deps.db.select().from(fileHolds).where(eq(fileHolds.fileId, storedFiles.id))),
          ),
        )
        .returning({ storageKey: storedFiles.storageKey, sizeBytes: storedFiles.sizeBytes });
      for (const file of deleted) {
        await deps.storage.remove(file.storageKey);
        round.deleted += 1;
        round.freedBytes += file.sizeBytes;
      }
      if (expired.length < batchSize || deleted.length === 0) break;
    }
    round.temporaryRemoved = await deps.storage.sweepTemporary(deps.temporaryMaxAgeMs ?? 24 * 3_600_000);
    if (round.deleted > 0 || round.temporaryRemoved > 0) deps.logger.info('retention round', { ...round });
    return round;
  }

  const loop = createWorkerLoop({
    name: 'retention',
    logger: deps.logger,
    intervalMs: deps.intervalMs,
    round: async () => {
      await runOnce();
    },
  });

  return {
    runOnce,
    start: () => loop.start(),
    stop: () => loop.stop(),
  };
}
