/**
 * Retention: files past their `expires_at` are deleted (row, then bytes) unless a job holds them;
 * temporary files abandoned by crashed uploads are swept, and so are objects no row points at (an upload
 * killed between its rename and its insert; see orphan-sweep.ts). A loop with an injectable clock and a
 * stop signal (DESIGN §4.8); each round logs how much space it freed.
 */
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { createWorkerLoop, type LoopControl } from '@shared/worker-loop.ts';
import { fileHolds, storedFiles } from '@db/schema/files.ts';
import { and, eq, inArray, isNotNull, lte, notExists } from 'drizzle-orm';
import { DEFAULT_ORPHAN_GRACE_MS, sweepOrphans } from './orphan-sweep.ts';
import type { FileStorage } from './storage.ts';

export interface RetentionRound {
  /** Expired files deleted. */
  deleted: number;
  /** Bytes of the expired files deleted and the orphans removed. */
  freedBytes: number;
  temporaryRemoved: number;
  /** Objects without a row, older than the grace, removed. */
  orphansRemoved: number;
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
  /** Objects without a row younger than this are left alone (their upload may be about to insert it); default 1 hour. */
  orphanGraceMs?: number;
  /** Temporary files not written to for this long are leftovers of dead uploads; default the orphan grace. */
  temporaryMaxAgeMs?: number;
  batchSize?: number;
  now?: () => number;
}): RetentionWorker {
  const now = deps.now ?? Date.now;
  const batchSize = deps.batchSize ?? 500;
  const orphanGraceMs = deps.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS;
  // A live upload writes its temporary file continuously and the server drops a connection idle for
  // two minutes, so one untouched for the grace is dead; no need for the longer day this used to wait.
  const temporaryMaxAgeMs = deps.temporaryMaxAgeMs ?? orphanGraceMs;

  async function runOnce(): Promise<RetentionRound> {
    const round: RetentionRound = { deleted: 0, freedBytes: 0, temporaryRemoved: 0, orphansRemoved: 0 };
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
    round.temporaryRemoved = await deps.storage.sweepTemporary(new Date(now() - temporaryMaxAgeMs));
    const orphans = await sweepOrphans({ db: deps.db, storage: deps.storage, logger: deps.logger, graceMs: orphanGraceMs, batchSize, now });
    round.orphansRemoved = orphans.removed;
    round.freedBytes += orphans.removedBytes;
    if (round.deleted > 0 || round.temporaryRemoved > 0 || round.orphansRemoved > 0) deps.logger.info('retention round', { ...round });
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
