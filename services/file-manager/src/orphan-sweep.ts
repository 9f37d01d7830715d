/**
 * Objects no `stored_files` row points at. An upload renames its object into the store and then inserts
 * the row; a process killed between the two (or retention killed between deleting a row and removing its
 * bytes) leaves an object nothing will ever read or delete. This sweep lists the store, looks the keys
 * up in batches (one query per batch) and removes the unreferenced objects older than a grace period:
 * a younger one may belong to an upload between its rename and its insert right now.
 *
 * The database is the record of what to keep, so a database that records no file at all next to a
 * store holding old objects is taken for the wrong database (a mistyped DATABASE_URL, a standalone
 * data directory pointed at a fresh PostgreSQL), not for a store of orphans: nothing is removed then.
 */
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { storedFiles } from '@db/schema/files.ts';
import { inArray } from 'drizzle-orm';
import type { FileStorage, StoredObject } from './storage.ts';

/** One hour: an upload inserts its row milliseconds after the rename, so this leaves a wide margin. */
export const DEFAULT_ORPHAN_GRACE_MS = 3_600_000;

export interface OrphanSweepResult {
  /** Objects listed. */
  scanned: number;
  removed: number;
  removedBytes: number;
  /** True when old objects were found but `stored_files` was empty, so nothing was removed. */
  refused: boolean;
}

/**
 * Removes objects without a row that were last written before `now() - graceMs`, logging each one it
 * removes. Keys are checked `batchSize` at a time, so memory stays bounded however large the store is.
 */
export async function sweepOrphans(deps: {
  db: Db;
  storage: FileStorage;
  logger: Logger;
  graceMs?: number;
  batchSize?: number;
  now?: () => number;
}): Promise<OrphanSweepResult> {
  const now = deps.now ?? Date.now;
  const batchSize = deps.batchSize ?? 500;
  const cutoff = now() - (deps.graceMs ?? DEFAULT_ORPHAN_GRACE_MS);
  const result: OrphanSweepResult = { scanned: 0, removed: 0, removedBytes: 0, refused: false };
  const [anyRow] = await deps.db.select({ id: storedFiles.id }).from(storedFiles).limit(1);
  let batch: StoredObject[] = [];

  async function settle() {
    const keys = batch.map((o) => o.key);
    const referenced = new Set(
      (await deps.db.select({ storageKey: storedFiles.storageKey }).from(storedFiles).where(inArray(storedFiles.storageKey, keys))).map(
        (r) => r.storageKey,
      ),
    );
    for (const object of batch) {
      if (referenced.has(object.key)) continue;
      await deps.storage.remove(object.key);
      result.removed += 1;
      result.removedBytes += object.sizeBytes;
      deps.logger.warn('orphan object removed', {
        storageKey: object.key,
        sizeBytes: object.sizeBytes,
        modifiedAt: new Date(object.modifiedAtMs).toISOString(),
      });
    }
    batch = [];
  }

  for await (const object of deps.storage.listObjects()) {
    result.scanned += 1;
    // Young objects are not even looked up: their row may be on its way.
    if (object.modifiedAtMs >= cutoff) continue;
    if (!anyRow) {
      result.refused = true;
      deps.logger.warn('orphan sweep skipped: the database records no files but the store holds old objects; is this the right database?', {
        storageKey: object.key,
      });
      return result;
    }
    batch.push(object);
    if (batch.length >= batchSize) await settle();
  }
  if (batch.length > 0) await settle();
  return result;
}
