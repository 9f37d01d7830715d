/**
 * `npm run restore`: restores a backup and proves it complete. Checks every database file against
 * the manifest, restores into a scratch database (PostgreSQL backups, on the admin URL) or a scratch
 * directory (standalone backups) unless a recovery target is given, compares row counts table by table
 * and the stored-file records with the manifest, and re-hashes the stored files. Scratch copies are
 * dropped afterwards unless `keep`: a scheduled verification must not pile up databases.
 */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalStorage } from '../../services/file-manager/src/storage.ts';
import { redactUrl } from './cli-args.ts';
import { mapLimit } from './checksum.ts';
import { readManifest, type Manifest } from './manifest.ts';
import type { PgTools } from './pg-tools.ts';
import { assertPgliteNotInUse } from '@shared/pglite-in-use.ts';
import { SERVICE_SCHEMAS, type ServiceSchema } from './platform-schemas.ts';
import { restorePglite } from './restore-pglite.ts';
import { assertTargetsEmpty, createScratchDatabase, restorePostgres, type RestoredDatabase } from './restore-postgres.ts';
import { restoreSecrets } from './secrets-copy.ts';
import { copyObject } from './stored-files.ts';
import { compareCounts, compareFileRecords, verifyDumpFiles, verifySecrets, verifyStoredFiles, type Difference } from './verify.ts';

export type RestoreDestination =
  /** PostgreSQL backup, verification: a new database on the admin URL's server. */
  | { kind: 'scratch-postgres'; adminUrl: string; name: string; keep: boolean }
  /** Standalone backup, verification: a new directory made under `dir` (default the system temp dir). */
  | { kind: 'scratch-pglite'; dir?: string; keep: boolean }
  /** PostgreSQL backup, recovery: existing databases without the platform's schemas. */
  | { kind: 'target-postgres'; urls: Record<ServiceSchema, string> }
  /** Standalone backup, recovery: a DATA_DIR whose pglite folder is absent or empty. */
  | { kind: 'target-pglite'; dataDir: string };

export interface RestoreOptions {
  backupDir: string;
  destination: RestoreDestination;
  /** Recovery: put the backed-up stored files into this STORAGE_DIR (verified on the way). */
  storageDir?: string;
  /** `--no-files` backups: check the files in place in this storage directory instead. */
  verifyStorageDir?: string;
  jobs: number;
  pg: PgTools;
  log(line: string): void;
  /** Called with the scratch copy's removal as soon as one exists, so an interrupt can still run it. */
  onScratch?(drop: () => Promise<void>): void;
}

export interface RestoreOutcome {
  manifest: Manifest;
  differences: Difference[];
  /** Where the data was restored (URL without password, or directory). */
  location: string;
  /** Whether that location still exists afterwards. */
  kept: boolean;
  totals: { schemas: number; tables: number; rows: number; files: number; fileBytes: number; filesVerified: boolean };
  notes: string[];
}

export async function runRestore(options: RestoreOptions): Promise<RestoreOutcome> {
  const manifest = await readManifest(options.backupDir);
  const { destination } = options;
  const wanted = manifest.mode === 'postgres' ? ['scratch-postgres', 'target-postgres'] : ['scratch-pglite', 'target-pglite'];
  if (!wanted.includes(destination.kind)) {
    throw new Error(
      manifest.mode === 'postgres'
        ? 'this is a PostgreSQL backup: restoring it needs a PostgreSQL server (--database-url <admin url> or DATABASE_URL, or --target)'
        : 'this is a standalone (embedded PGlite) backup: it restores into a PGlite directory (scratch, or --target-data-dir), not PostgreSQL',
    );
  }
  const notes: string[] = [];
  options.log(`backup of ${manifest.createdAt} (platform ${manifest.platformVersion}, ${manifest.mode})`);
  if (manifest.platformVersion !== PLATFORM_VERSION) {
    notes.push(`the backup is of platform ${manifest.platformVersion}, this is ${PLATFORM_VERSION}: after recovering, \`npm run migrate\` brings the schemas forward`);
  }
  const differences: Difference[] = await verifyDumpFiles(options.backupDir, manifest);
  differences.push(...(await verifySecrets(options.backupDir, manifest)));

  let location: string;
  let drop: (() => Promise<void>) | null = null;
  let restored: RestoredDatabase;
  try {
    if (destination.kind === 'scratch-postgres' || destination.kind === 'target-postgres') {
      let urls: Record<ServiceSchema, string>;
      if (destination.kind === 'scratch-postgres') {
        const scratch = await createScratchDatabase(destination.adminUrl, destination.name);
        if (!destination.keep) {
          drop = scratch.drop;
          options.onScratch?.(scratch.drop);
        }
        location = redactUrl(scratch.url);
        options.log(`scratch database ${location}`);
        urls = Object.fromEntries(SERVICE_SCHEMAS.map((s) => [s, scratch.url])) as Record<ServiceSchema, string>;
      } else {
        await assertTargetsEmpty(destination.urls);
        urls = destination.urls;
        location = [...new Set(Object.values(urls).map(redactUrl))].join(', ');
        options.log(`restoring into ${location}`);
      }
      restored = await restorePostgres(options.backupDir, manifest, urls, options.pg, options.jobs, options.log);
    } else {
      let pgliteDir: string;
      if (destination.kind === 'scratch-pglite') {
        // Always a new directory of our own, even under a given --scratch-dir: it is removed afterwards.
        const parent = await mkdtemp(join(destination.dir ?? tmpdir(), 'fip-restore-'));
        pgliteDir = join(parent, 'pglite');
        if (!destination.keep) {
          drop = () => rm(parent, { recursive: true, force: true });
          options.onScratch?.(drop);
        }
      } else {
        pgliteDir = join(destination.dataDir, 'pglite');
        if (existsSync(pgliteDir)) await assertPgliteNotInUse(pgliteDir);
      }
      location = pgliteDir;
      options.log(`loading the embedded database into ${pgliteDir}`);
      restored = await restorePglite(options.backupDir, manifest, pgliteDir);
    }
    differences.push(...restored.differences);
    differences.push(...compareCounts(manifest, restored.schemas));
    if (restored.fileRows) differences.push(...compareFileRecords(manifest.files.items, restored.fileRows));

    // Stored files: the backup's copies, or (for a --no-files backup) a storage directory in place.
    let filesVerified = false;
    let fileBytes = 0;
    const filesDir = manifest.files.included ? join(options.backupDir, 'files') : options.verifyStorageDir;
    if (filesDir) {
      options.log(`verifying ${manifest.files.count} stored file(s) in ${filesDir}`);
      const checked = await verifyStoredFiles(manifest.files.items, createLocalStorage(filesDir));
      differences.push(...checked.differences);
      fileBytes = checked.bytes;
      filesVerified = true;
    } else if (manifest.files.count > 0) {
      notes.push(`${manifest.files.count} stored file(s) were listed but not copied (--no-files); pass --verify-storage <dir> to check them where they are`);
    }

    if (destination.kind === 'target-postgres' || destination.kind === 'target-pglite') {
      const storageDir = options.storageDir ?? (destination.kind === 'target-pglite' ? join(destination.dataDir, 'files') : undefined);
      if (storageDir && manifest.files.included) differences.push(...(await putFilesBack(options.backupDir, manifest, storageDir, options.log)));
      else if (manifest.files.count > 0) notes.push('stored files were not put back: pass --storage-dir <file-manager STORAGE_DIR>');
      if (destination.kind === 'target-pglite' && manifest.secrets.included) {
        const conflicts = await restoreSecrets(manifest.secrets.files, join(options.backupDir, 'secrets'), join(destination.dataDir, 'secrets'));
        for (const path of conflicts) differences.push({ check: 'secret', subject: path, expected: 'the backed-up key', actual: 'a different key already there (kept)' });
      }
    }
    if (!manifest.secrets.included && manifest.secrets.files.length > 0) {
      notes.push(`the backup left out ${manifest.secrets.files.length} key file(s) (--no-secrets): ${manifest.secrets.files.map((f) => f.name).join(', ')} must come from where you keep them`);
    }

    const tables = Object.values(restored.schemas).reduce((n, s) => n + Object.keys(s.tables ?? {}).length, 0);
    const rows = Object.values(restored.schemas).reduce((n, s) => n + Object.values(s.tables ?? {}).reduce((a, b) => a + b, 0), 0);
    return {
      manifest,
      differences,
      location,
      kept: drop === null,
      totals: { schemas: Object.keys(restored.schemas).length, tables, rows, files: manifest.files.count, fileBytes, filesVerified },
      notes,
    };
  } finally {
    if (drop) await drop();
  }
}

/** Copies the backed-up objects into a STORAGE_DIR, hashing what is written; an existing object with other bytes is left alone and reported. */
async function putFilesBack(backupDir: string, manifest: Manifest, storageDir: string, log: (line: string) => void): Promise<Difference[]> {
  log(`putting ${manifest.files.count} stored file(s) into ${storageDir}`);
  const source = createLocalStorage(join(backupDir, 'files'));
  const target = createLocalStorage(storageDir);
  const results = await mapLimit(manifest.files.items, 4, async (item): Promise<Difference[]> => {
    if (item.sha256 === null) return [];
    if ((await target.size(item.storageKey)) !== null) {
      const there = await copyObject(target, null, item.storageKey);
      return there?.sha256 === item.sha256 ? [] : [{ check: 'file', subject: `${item.id} in ${storageDir}`, expected: 'absent or the same bytes', actual: 'other bytes already there (kept)' }];
    }
    const written = await copyObject(source, target, item.storageKey);
    return written?.sha256 === item.sha256 ? [] : [{ check: 'file', subject: `${item.id} in ${storageDir}`, expected: `sha256 ${item.sha256}`, actual: written ? `sha256 ${written.sha256}` : 'missing from the backup' }];
  });
  return results.flat();
}
