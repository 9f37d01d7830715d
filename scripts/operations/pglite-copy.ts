/**
 * The embedded database's data directory as one file: PGlite's own `dumpDataDir` (a gzip tarball of
 * the directory, after a checkpoint) taken while this process is the only one with it open, and
 * loaded back with `loadDataDir` into an empty directory. The tarball is only readable by the same
 * PGlite major version (it is the server's on-disk format, not SQL); the manifest records the version.
 */
import { PGlite } from '@electric-sql/pglite';
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Opens an existing embedded database; refuses a directory that holds none (it would create one). */
export async function openExistingPglite(pgliteDir: string): Promise<PGlite> {
  if (!existsSync(join(pgliteDir, 'PG_VERSION'))) {
    throw new Error(`no embedded database at ${pgliteDir} (the platform has not run with this DATA_DIR; set DATA_DIR or --data-dir)`);
  }
  return PGlite.create(pgliteDir);
}

/** Checkpoints and writes the data directory as a gzip tarball to `file`. */
export async function dumpPglite(db: PGlite, file: string): Promise<void> {
  await db.exec('checkpoint');
  const tarball = await db.dumpDataDir('gzip');
  await Bun.write(file, tarball);
}

/** Creates an embedded database in `pgliteDir` (absent or empty) from a tarball written by dumpPglite. */
export async function loadPglite(tarballFile: string, pgliteDir: string): Promise<PGlite> {
  if (existsSync(pgliteDir) && (await readdir(pgliteDir)).length > 0) {
    throw new Error(`${pgliteDir} is not empty: restore an embedded database only into a new directory`);
  }
  await mkdir(pgliteDir, { recursive: true });
  const tarball = new Blob([await Bun.file(tarballFile).arrayBuffer()]);
  return PGlite.create(pgliteDir, { loadDataDir: tarball });
}
