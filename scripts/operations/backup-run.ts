/**
 * `npm run backup`: one backup directory holding the databases (per-schema pg_dumps or the embedded
 * data directory), the stored files (unless --no-files), the platform's key files when it made them
 * itself (unless --no-secrets), and manifest.json, written last.
 */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createLocalStorage } from '../../services/file-manager/src/storage.ts';
import { createStaging } from './backup-dir.ts';
import { backupPglite } from './backup-pglite.ts';
import type { ModeBackupContext } from './backup-mode.ts';
import { backupPostgres } from './backup-postgres.ts';
import type { DatabaseTargets } from './cli-args.ts';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, type Manifest } from './manifest.ts';
import type { PgTools } from './pg-tools.ts';
import { backUpSecrets } from './secrets-copy.ts';
import { backUpStoredFiles } from './stored-files.ts';

export interface BackupOptions {
  targets: DatabaseTargets;
  /** The backup becomes `<outDir>/<name>`. */
  outDir: string;
  name: string;
  /** false (`--no-files`): stored files are listed and checked, their contents not copied. */
  includeFiles: boolean;
  /** false (`--no-secrets`): key files are fingerprinted, not copied. */
  includeSecrets: boolean;
  /** file-manager's STORAGE_DIR. */
  storageDir: string;
  /** DATA_DIR/secrets. */
  secretsDir: string;
  migrationsDir: string;
  /** pg_dump processes at once. */
  jobs: number;
  /** Standalone: proceed although postmaster.pid exists where /proc cannot tell who holds the database. */
  force: boolean;
  pg: PgTools;
  log(line: string): void;
  /** Called with the removal of the half-written backup, so an interrupt can still run it. */
  onStaging?(discard: () => Promise<void>): void;
}

export interface BackupOutcome {
  path: string;
  manifest: Manifest;
}

export async function runBackup(options: BackupOptions): Promise<BackupOutcome> {
  const started = performance.now();
  const staging = await createStaging(options.outDir, options.name);
  options.onStaging?.(staging.discard);
  try {
    const source = createLocalStorage(options.storageDir);
    const filesDir = join(staging.dir, 'files');
    const target = options.includeFiles ? createLocalStorage(filesDir) : null;
    let filesMs = 0;
    const context: ModeBackupContext = {
      dir: staging.dir,
      migrationsDir: options.migrationsDir,
      log: options.log,
      copyFiles: async (rows) => {
        const t = performance.now();
        options.log(`${options.includeFiles ? 'copying' : 'checking'} ${rows.length} stored file(s) from ${options.storageDir}`);
        const items = await backUpStoredFiles(rows, source, target);
        filesMs = performance.now() - t;
        return items;
      },
    };
    const state =
      options.targets.kind === 'postgres'
        ? await backupPostgres(options.targets.urls, options.pg, { ...context, jobs: options.jobs })
        : await backupPglite(options.targets.pgliteDir, { ...context, force: options.force });
    await rm(join(filesDir, 'tmp'), { recursive: true, force: true });

    const mismatched = state.files.filter((f) => f.status !== 'ok');
    for (const item of mismatched) {
      options.log(`warning: stored file ${item.id} (${item.storageKey}) ${item.status.replace('_', ' ')}: recorded ${item.sizeBytes} bytes sha256 ${item.recordedSha256}, on disk ${item.bytes ?? '-'} bytes sha256 ${item.sha256 ?? '-'}`);
    }
    if (mismatched.length > 0 && mismatched.every((f) => f.status === 'missing')) {
      options.log(`hint: is ${options.storageDir} file-manager's STORAGE_DIR? (set STORAGE_DIR or --storage-dir)`);
    }

    const secrets = await backUpSecrets(options.secretsDir, options.includeSecrets ? join(staging.dir, 'secrets') : null);
    if (secrets.length > 0) {
      options.log(
        options.includeSecrets
          ? `included ${secrets.length} key file(s) from ${options.secretsDir}: keep this backup as safe as the keys themselves`
          : `left out ${secrets.length} key file(s) from ${options.secretsDir} (--no-secrets): keep them yourself, the restored data needs them`,
      );
    }

    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_FORMAT_VERSION,
      platformVersion: PLATFORM_VERSION,
      mode: options.targets.kind,
      createdAt: state.createdAt.toISOString(),
      completedAt: new Date().toISOString(),
      databases: state.databases,
      schemas: state.schemas,
      ...(state.pglite ? { pglite: state.pglite } : {}),
      files: {
        included: options.includeFiles,
        storageDir: options.storageDir,
        count: state.files.length,
        totalBytes: state.files.reduce((n, f) => n + f.sizeBytes, 0),
        mismatches: mismatched.length,
        items: state.files,
      },
      secrets: { included: options.includeSecrets && secrets.length > 0, files: secrets },
      durationsMs: { ...state.timings, files: Math.round(filesMs), total: Math.round(performance.now() - started) },
    };
    return { path: await staging.publish(manifest), manifest };
  } catch (err) {
    await staging.discard();
    throw err;
  }
}
