/**
 * Restores a standalone backup: PGlite loads the data-directory tarball into an empty directory (a
 * scratch one for verification, or DATA_DIR/pglite for recovery), then the same read-back as for
 * PostgreSQL.
 */
import { join } from 'node:path';
import type { Manifest } from './manifest.ts';
import { loadPglite } from './pglite-copy.ts';
import { pgliteRunner } from './sql-runner.ts';
import { listStoredFiles, type StoredFileRow } from './stored-files.ts';
import { countTables, readBookkeeping, schemaExists } from './table-counts.ts';
import type { RestoredDatabase } from './restore-postgres.ts';
import type { RestoredSchema } from './verify.ts';

export async function restorePglite(backupDir: string, manifest: Manifest, pgliteDir: string): Promise<RestoredDatabase> {
  if (!manifest.pglite) throw new Error('the manifest names no embedded database file');
  let db;
  try {
    db = await loadPglite(join(backupDir, 'db', manifest.pglite.dataDir.file), pgliteDir);
  } catch (err) {
    return {
      differences: [{ check: 'restore', subject: `db/${manifest.pglite.dataDir.file}`, expected: 'loaded by PGlite', actual: (err as Error).message }],
      schemas: {},
      fileRows: null,
    };
  }
  try {
    const runner = pgliteRunner(db);
    const schemas: Record<string, RestoredSchema> = {};
    let fileRows: StoredFileRow[] | null = null;
    for (const schema of Object.keys(manifest.schemas)) {
      const present = await schemaExists(runner, schema);
      schemas[schema] = { tables: present ? await countTables(runner, schema) : null, migrationRows: (await readBookkeeping(runner, schema))?.rows ?? null };
      if (schema === 'files' && present) fileRows = await listStoredFiles(runner);
    }
    return { differences: [], schemas, fileRows };
  } finally {
    await db.close();
  }
}
