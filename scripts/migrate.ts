/**
 * `npm run migrate`: brings every service schema up to the repository's migrations, in PostgreSQL
 * (DATABASE_URL, --database-url, or one URL per schema) or in the embedded database under DATA_DIR
 * (the platform must be stopped: PGlite serves one process). Idempotent. Exit 0 done, 1 failed,
 * 2 bad usage.
 */
import { DATABASE_FLAG_OPTIONS, parseFlags, parseOperationsEnv, redactUrl, resolveDatabaseTargets, UsageError } from './operations/cli-args.ts';
import { runMigrations } from './operations/migrate-run.ts';
import { formatTable } from './operations/report.ts';

const USAGE = `usage: npm run migrate -- [--database-url <url> | --database <schema>=<url> ...] [--data-dir <dir>]

  --database-url <url>   PostgreSQL database holding every schema (default DATABASE_URL)
  --database <s>=<url>   one schema's own database (repeatable; or USERS_DATABASE_URL, ...)
  --data-dir <dir>       without any URL: the embedded database in <dir>/pglite (default DATA_DIR or ./data)

Migrations come from MIGRATIONS_DIR (default db/migrations).`;

try {
  const { values } = parseFlags(Bun.argv.slice(2), {
    ...DATABASE_FLAG_OPTIONS,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const env = parseOperationsEnv(process.env);
  const targets = resolveDatabaseTargets({ databaseUrl: values['database-url'], database: values.database, dataDir: values['data-dir'] }, env);
  const results = await runMigrations(targets, env.MIGRATIONS_DIR, (line) => console.log(line));
  for (const database of new Set(results.map((r) => r.database))) {
    console.log(`migrations in ${database}`);
    const rows = results.filter((r) => r.database === database);
    const table = formatTable(
      ['schema', 'applied now', 'current'],
      rows.map((r) => [r.schema, r.applied.length ? r.applied.join(', ') : '-', `${r.current ?? 'none'} (${r.total} in the repository)`]),
      100,
    );
    console.log(table.replace(/^/gm, '  '));
  }
  const applied = results.reduce((n, r) => n + r.applied.length, 0);
  console.log(applied ? `applied ${applied} migration(s)` : 'every schema is up to date');
  process.exit(0);
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`migrate: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  console.error(`migrate failed: ${redactUrl((err as Error).message)}`);
  process.exit(1);
}
