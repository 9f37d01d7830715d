/**
 * Backup of the embedded database (standalone `npm start` without DATABASE_URL). PGlite serves one
 * process, so this refuses while the platform has it open (see pglite-in-use.ts) rather than copying
 * files under a running server; with the platform stopped it opens the database itself, counts every
 * table and writes the data directory with PGlite's dumpDataDir, all with nothing else connected, so
 * counts and copy are of one state.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from './checksum.ts';
import type { SchemaEntry } from './manifest.ts';
import { readJournal, tagAt } from './migrations-journal.ts';
import type { ModeBackup, ModeBackupContext } from './backup-mode.ts';
import { dumpPglite, openExistingPglite } from './pglite-copy.ts';
import { assertPgliteNotInUse } from '@shared/pglite-in-use.ts';
import { SERVICE_SCHEMAS } from './platform-schemas.ts';
import { pgliteRunner } from './sql-runner.ts';
import { listStoredFiles, type StoredFileRow } from './stored-files.ts';
import { countTables, readBookkeeping, schemaExists, serverVersion } from './table-counts.ts';

export const PGLITE_TARBALL = 'pglite-datadir.tar.gz';

export async function backupPglite(pgliteDir: string, context: ModeBackupContext & { force: boolean }): Promise<ModeBackup> {
  const note = await assertPgliteNotInUse(pgliteDir, { force: context.force });
  if (note) context.log(note);
  const dbDir = join(context.dir, 'db');
  await mkdir(dbDir);
  const started = performance.now();
  const timings: Record<string, number> = {};
  const db = await openExistingPglite(pgliteDir);
  timings.open = Math.round(performance.now() - started);
  let createdAt: Date;
  let version: string;
  const schemas: Record<string, SchemaEntry> = {};
  let fileRows: StoredFileRow[];
  try {
    const runner = pgliteRunner(db);
    createdAt = new Date();
    version = await serverVersion(runner);
    for (const schema of SERVICE_SCHEMAS) {
      if (!(await schemaExists(runner, schema))) throw new Error(`schema ${schema} does not exist in ${pgliteDir}: run \`npm run migrate\` (or npm start) first`);
      const bookkeeping = await readBookkeeping(runner, schema);
      schemas[schema] = {
        tables: await countTables(runner, schema),
        migrations: bookkeeping && {
          table: bookkeeping.table,
          rows: bookkeeping.rows,
          last: tagAt(await readJournal(context.migrationsDir, schema), bookkeeping.lastCreatedAt),
          lastCreatedAt: bookkeeping.lastCreatedAt,
        },
      };
    }
    fileRows = await listStoredFiles(runner);
    timings.counts = Math.round(performance.now() - started - timings.open);
    context.log(`copying the embedded database ${pgliteDir}`);
    await dumpPglite(db, join(dbDir, PGLITE_TARBALL));
  } finally {
    await db.close();
  }
  const { sha256, bytes } = await sha256File(join(dbDir, PGLITE_TARBALL));
  timings.dataDir = Math.round(performance.now() - started - timings.open - timings.counts);
  return {
    createdAt,
    databases: [{ url: pgliteDir, serverVersion: version, schemas: [...SERVICE_SCHEMAS], snapshot: null }],
    schemas,
    pglite: { dataDir: { file: PGLITE_TARBALL, bytes, sha256 } },
    files: await context.copyFiles(fileRows),
    timings,
  };
}
