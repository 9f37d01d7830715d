/**
 * `npm run backup -- [--out <dir>] [options]`: writes one complete backup directory (see
 * scripts/operations/backup-run.ts) and prints its path last. Exit 0 done; 3 done, but some stored
 * files on disk differ from file-manager's records (listed; the backup holds them as found);
 * 1 failed (nothing is left but a `.partial` directory when the process was killed); 2 bad usage.
 */
import { join, resolve } from 'node:path';
import { defaultBackupName } from './operations/backup-dir.ts';
import { runBackup } from './operations/backup-run.ts';
import { DATABASE_FLAG_OPTIONS, parseFlags, parseOperationsEnv, redactUrl, resolveDatabaseTargets, UsageError } from './operations/cli-args.ts';
import { createPgTools } from './operations/pg-tools.ts';

const USAGE = `usage: npm run backup -- [--out <dir>] [--name <name>] [--no-files] [--no-secrets]
                         [--database-url <url> | --database <schema>=<url> ...] [--data-dir <dir>]
                         [--storage-dir <dir>] [--jobs <n>] [--force]

  --out <dir>              where the backup directory is created (default ./backups)
  --name <name>            its name (default fip-backup-<UTC time>)
  --database-url <url>     PostgreSQL database holding every schema (default DATABASE_URL)
  --database <s>=<url>     one schema's own database (repeatable; or USERS_DATABASE_URL, ...)
  --data-dir <dir>         standalone: DATA_DIR of the embedded database (default DATA_DIR or ./data)
  --storage-dir <dir>      file-manager's storage (default STORAGE_DIR or <DATA_DIR>/files)
  --no-files               list and checksum stored files without copying them
  --no-secrets             leave DATA_DIR/secrets (keys the platform made itself) out
  --jobs <n>               pg_dump processes at once (default 2)
  --force                  standalone: proceed although postmaster.pid exists (the platform crashed)

Without any database URL the embedded database under DATA_DIR/pglite is backed up; the platform
must be stopped for that (PGlite serves one process at a time).

Exit status: 0 done; 3 done, but stored files on disk differ from file-manager's records (listed);
1 failed (no backup is left); 2 bad usage.`;

let discardStaging: (() => Promise<void>) | null = null;
const interrupted = (signal: string) => {
  console.error(`backup: ${signal}, removing the unfinished backup`);
  (discardStaging ?? (async () => {}))().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);

try {
  const { values } = parseFlags(Bun.argv.slice(2), {
    out: { type: 'string' },
    name: { type: 'string' },
    ...DATABASE_FLAG_OPTIONS,
    'storage-dir': { type: 'string' },
    'no-files': { type: 'boolean' },
    'no-secrets': { type: 'boolean' },
    jobs: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const env = parseOperationsEnv(process.env);
  const targets = resolveDatabaseTargets({ databaseUrl: values['database-url'], database: values.database, dataDir: values['data-dir'] }, env);
  const dataDir = resolve(values['data-dir'] ?? env.DATA_DIR);
  const jobs = Number(values.jobs ?? 2);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 16) throw new UsageError('--jobs must be a whole number from 1 to 16');

  const where = targets.kind === 'postgres' ? [...new Set(Object.values(targets.urls).map(redactUrl))].join(', ') : `embedded PGlite in ${targets.pgliteDir}`;
  console.log(`backup of ${where}`);
  const outcome = await runBackup({
    targets,
    outDir: resolve(values.out ?? 'backups'),
    name: values.name ?? defaultBackupName(new Date()),
    includeFiles: !values['no-files'],
    includeSecrets: !values['no-secrets'],
    storageDir: resolve(values['storage-dir'] ?? env.STORAGE_DIR ?? join(dataDir, 'files')),
    secretsDir: join(dataDir, 'secrets'),
    migrationsDir: env.MIGRATIONS_DIR,
    jobs,
    force: values.force ?? false,
    pg: createPgTools({ binDir: env.PG_BIN_DIR, env: process.env }),
    log: (line) => console.log(line),
    onStaging: (discard) => {
      discardStaging = discard;
    },
  });
  discardStaging = null;
  const { manifest } = outcome;
  const rows = Object.values(manifest.schemas).reduce((n, s) => n + Object.values(s.tables).reduce((a, b) => a + b, 0), 0);
  const tables = Object.values(manifest.schemas).reduce((n, s) => n + Object.keys(s.tables).length, 0);
  console.log(
    `backup complete in ${((manifest.durationsMs?.total ?? 0) / 1000).toFixed(1)} s: ${Object.keys(manifest.schemas).length} schemas, ${tables} tables, ${rows} rows, ` +
      `${manifest.files.count} stored file(s) (${manifest.files.included ? 'copied' : 'listed only'})` +
      (manifest.files.mismatches ? `, ${manifest.files.mismatches} differing from their records` : ''),
  );
  console.log(outcome.path);
  process.exit(manifest.files.mismatches > 0 ? 3 : 0);
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`backup: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  console.error(`backup failed: ${redactUrl((err as Error).message)}`);
  process.exit(1);
}
