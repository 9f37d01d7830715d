/**
 * `npm run restore -- <backup dir> [options]`: restores a backup (by default into a scratch database
 * or directory that is dropped afterwards) and compares it with its manifest: dump checksums, row
 * counts table by table, stored-file records and checksums. Prints the differences and a summary
 * line. Exit 0 everything matches; 1 differences found; 2 bad usage or the restore could not run.
 */
import { resolve } from 'node:path';
import { parseFlags, parseOperationsEnv, parseSchemaUrls, redactUrl, UsageError } from './operations/cli-args.ts';
import { readManifest } from './operations/manifest.ts';
import { createPgTools } from './operations/pg-tools.ts';
import { SERVICE_SCHEMAS, type ServiceSchema } from './operations/platform-schemas.ts';
import { formatBytes } from '@shared/format-bytes.ts';
import { formatDifferences } from './operations/report.ts';
import { runRestore, type RestoreDestination } from './operations/restore-run.ts';

const USAGE = `usage: npm run restore -- <backup dir> [--database-url <admin url>] [--keep] [--scratch-name <name>]
                          [--target <url> | --target <schema>=<url> ...] [--target-data-dir <dir>]
                          [--storage-dir <dir>] [--verify-storage <dir>] [--jobs <n>]

Verification (default): restores into a new scratch database fip_restore_<time> on the server of
--database-url (default DATABASE_URL; the role must be allowed to create databases), or for a
standalone backup into a scratch PGlite directory, compares everything with the manifest, and drops
the scratch copy again.
  --keep                   keep the scratch database/directory and print where it is
  --scratch-name <name>    name of the scratch database (default fip_restore_<UTC time>_<random>)
  --scratch-dir <dir>      standalone: make the scratch directory under <dir> (default the system temp dir)
  --verify-storage <dir>   for a --no-files backup: check the stored files in this storage directory

Recovery (restores for real, then runs the same checks):
  --target <url>           PostgreSQL backup: the database to restore every schema into, or
  --target <s>=<url>       one per schema (repeatable); none of the schemas may exist there yet
  --target-data-dir <dir>  standalone backup: DATA_DIR to restore into (its pglite folder absent or empty;
                           files go to <dir>/files, keys to <dir>/secrets)
  --storage-dir <dir>      put the backed-up stored files into this STORAGE_DIR

  --jobs <n>               pg_restore processes at once (default 2)

Exit status: 0 everything matches the manifest, 1 differences (listed), 2 bad usage or could not run.`;

function scratchName(): string {
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `fip_restore_${stamp}_${Math.random().toString(36).slice(2, 6)}`;
}

function destinationFrom(values: Record<string, string | boolean | string[] | undefined>): RestoreDestination | 'decide-by-manifest' {
  const targets = (values.target as string[] | undefined) ?? [];
  if (values['target-data-dir'] && targets.length) throw new UsageError('--target and --target-data-dir are for different kinds of backup; give one');
  if (values['target-data-dir']) return { kind: 'target-pglite', dataDir: resolve(values['target-data-dir'] as string) };
  if (targets.length) {
    // A plain URL takes every schema not named with <schema>=<url>.
    const whole = targets.filter((t) => /^postgres(ql)?:\/\//.test(t));
    if (whole.length > 1) throw new UsageError('--target <url> is given more than once');
    const named = parseSchemaUrls(targets.filter((t) => !whole.includes(t)), '--target');
    const urls: Partial<Record<ServiceSchema, string>> = {};
    for (const schema of SERVICE_SCHEMAS) {
      const url = named[schema] ?? whole[0];
      if (url) urls[schema] = url;
    }
    const missing = SERVICE_SCHEMAS.filter((s) => !urls[s]);
    if (missing.length) throw new UsageError(`--target: no database for ${missing.join(', ')} (give --target <url> for all, or --target <schema>=<url> for each)`);
    return { kind: 'target-postgres', urls: urls as Record<ServiceSchema, string> };
  }
  return 'decide-by-manifest';
}

let dropScratch: (() => Promise<void>) | null = null;
const interrupted = (signal: string) => {
  console.error(`restore: ${signal}, removing the scratch copy`);
  (dropScratch ?? (async () => {}))().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);

try {
  const { values, positionals } = parseFlags(
    Bun.argv.slice(2),
    {
      'database-url': { type: 'string' },
      keep: { type: 'boolean' },
      'scratch-name': { type: 'string' },
      'scratch-dir': { type: 'string' },
      target: { type: 'string', multiple: true },
      'target-data-dir': { type: 'string' },
      'storage-dir': { type: 'string' },
      'verify-storage': { type: 'string' },
      jobs: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length !== 1) throw new UsageError('give exactly one backup directory');
  const env = parseOperationsEnv(process.env);
  const backupDir = resolve(positionals[0]!);
  const jobs = Number(values.jobs ?? 2);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 16) throw new UsageError('--jobs must be a whole number from 1 to 16');
  const keep = values.keep ?? false;

  let destination = destinationFrom(values);
  if (destination === 'decide-by-manifest') {
    const mode = (await readManifest(backupDir)).mode;
    if (mode === 'pglite') {
      destination = { kind: 'scratch-pglite', dir: values['scratch-dir'] ? resolve(values['scratch-dir']) : undefined, keep };
    } else {
      const adminUrl = values['database-url'] ?? env.DATABASE_URL;
      if (!adminUrl) throw new UsageError('a PostgreSQL backup restores into a scratch database: give --database-url <admin url> or set DATABASE_URL');
      if (!/^postgres(ql)?:\/\//.test(adminUrl)) throw new UsageError('--database-url must be a postgres:// or postgresql:// URL');
      destination = { kind: 'scratch-postgres', adminUrl, name: values['scratch-name'] ?? scratchName(), keep };
    }
  }

  const started = performance.now();
  const outcome = await runRestore({
    backupDir,
    destination,
    storageDir: values['storage-dir'] ? resolve(values['storage-dir']) : undefined,
    verifyStorageDir: values['verify-storage'] ? resolve(values['verify-storage']) : undefined,
    jobs,
    pg: createPgTools({ binDir: env.PG_BIN_DIR, env: process.env }),
    log: (line) => console.log(line),
    onScratch: (drop) => {
      dropScratch = drop;
    },
  });
  dropScratch = null;
  for (const note of outcome.notes) console.log(`note: ${note}`);
  const { totals, differences } = outcome;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const what =
    `${totals.schemas} schemas, ${totals.tables} tables, ${totals.rows} rows, ` +
    `${totals.files} stored file(s)${totals.filesVerified ? ` (${formatBytes(totals.fileBytes)} re-hashed)` : ' (not verified)'}`;
  if (differences.length > 0) {
    console.log(`\n${formatDifferences(differences)}\n`);
    console.log(`restore check FAILED in ${seconds} s: ${differences.length} difference(s) from the manifest; ${what}`);
  } else {
    console.log(`restore check passed in ${seconds} s: ${what} match the manifest`);
  }
  if (outcome.kept) console.log(`restored into ${outcome.location}`);
  else console.log(`scratch copy removed`);
  process.exit(differences.length > 0 ? 1 : 0);
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`restore: ${err.message}\n\n${USAGE}`);
  } else {
    console.error(`restore could not run: ${redactUrl((err as Error).message)}`);
  }
  process.exit(2);
}
