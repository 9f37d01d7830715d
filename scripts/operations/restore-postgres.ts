/**
 * Restores a PostgreSQL backup: every schema's dump and its migration bookkeeping, each with
 * `pg_restore --single-transaction`, into a scratch database made for the purpose (verification) or
 * into given databases (recovery: only where the schema does not exist yet, never over data). Then
 * reads back what the manifest recorded: row counts and the stored-file records.
 */
import postgres from 'postgres';
import { join } from 'node:path';
import { redactUrl } from './cli-args.ts';
import { mapLimit } from './checksum.ts';
import type { Manifest } from './manifest.ts';
import type { PgTools } from './pg-tools.ts';
import { BOOKKEEPING_SCHEMA, bookkeepingTable, quoteIdent, SERVICE_SCHEMAS, type ServiceSchema } from './platform-schemas.ts';
import { databaseKey } from './postgres-snapshot.ts';
import { withPostgresRunner } from './sql-runner.ts';
import { listStoredFiles, type StoredFileRow } from './stored-files.ts';
import { countTables, readBookkeeping, schemaExists } from './table-counts.ts';
import type { Difference, RestoredSchema } from './verify.ts';

export interface RestoredDatabase {
  differences: Difference[];
  schemas: Record<string, RestoredSchema>;
  /** The restored `files.stored_files`; null when that schema did not restore. */
  fileRows: StoredFileRow[] | null;
}

/** Creates the scratch database `name` on the admin URL's server; answers its URL and how to drop it. */
export async function createScratchDatabase(adminUrl: string, name: string): Promise<{ url: string; drop(): Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`scratch database name ${JSON.stringify(name)}: lowercase letters, digits and _ only`);
  const admin = postgres(adminUrl, { max: 1, connect_timeout: 10, fetch_types: false, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${quoteIdent(name)}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const again = postgres(adminUrl, { max: 1, connect_timeout: 10, fetch_types: false, onnotice: () => {} });
      try {
        await again.unsafe(`drop database if exists ${quoteIdent(name)} with (force)`);
      } finally {
        await again.end({ timeout: 5 });
      }
    },
  };
}

/**
 * Refuses a recovery target that already holds any schema (or bookkeeping) the backup would write:
 * restoring over live data would mix two states.
 */
export async function assertTargetsEmpty(urls: Record<ServiceSchema, string>): Promise<void> {
  const taken = new Map<string, string[]>();
  for (const schema of SERVICE_SCHEMAS) {
    const where = redactUrl(urls[schema]);
    await withPostgresRunner(urls[schema], async (runner) => {
      const names = taken.get(where) ?? [];
      if (await schemaExists(runner, schema)) names.push(schema);
      if (await readBookkeeping(runner, schema)) names.push(`${BOOKKEEPING_SCHEMA}.${bookkeepingTable(schema)}`);
      if (names.length) taken.set(where, names);
    });
  }
  if (taken.size > 0) {
    const list = [...taken].map(([where, names]) => `${where} already holds ${names.join(', ')}`).join('; ');
    throw new Error(`${list}. Restore only into databases without them (drop them first to replace them)`);
  }
}

export async function restorePostgres(backupDir: string, manifest: Manifest, urls: Record<ServiceSchema, string>, pg: PgTools, jobs: number, log: (line: string) => void): Promise<RestoredDatabase> {
  const differences: Difference[] = [];
  // The bookkeeping tables live in the `drizzle` schema, which their dumps (-t) do not create.
  for (const url of new Map(Object.values(urls).map((u) => [databaseKey(u), u])).values()) {
    await withPostgresRunner(url, (runner) => runner.query(`create schema if not exists ${quoteIdent(BOOKKEEPING_SCHEMA)}`));
  }
  const restoredOk = new Set<string>();
  log(`restoring ${Object.keys(manifest.schemas).length} schemas, ${jobs} at a time`);
  await mapLimit(Object.entries(manifest.schemas), jobs, async ([schema, entry]) => {
    const url = urls[schema as ServiceSchema];
    if (!url || !entry.dump) {
      differences.push({ check: 'restore', subject: schema, expected: 'a dump and a database', actual: url ? 'no dump in the manifest' : 'not a platform schema' });
      return;
    }
    try {
      await pg.restore({ url, file: join(backupDir, 'db', entry.dump.file) });
      restoredOk.add(schema);
    } catch (err) {
      differences.push({ check: 'restore', subject: `db/${entry.dump.file}`, expected: 'restored', actual: (err as Error).message });
    }
    if (entry.migrations?.dump) {
      try {
        await pg.restore({ url, file: join(backupDir, 'db', entry.migrations.dump.file) });
      } catch (err) {
        differences.push({ check: 'restore', subject: `db/${entry.migrations.dump.file}`, expected: 'restored', actual: (err as Error).message });
      }
    }
  });

  const schemas: Record<string, RestoredSchema> = {};
  let fileRows: StoredFileRow[] | null = null;
  for (const schema of Object.keys(manifest.schemas)) {
    const url = urls[schema as ServiceSchema];
    if (!url) continue;
    await withPostgresRunner(url, async (runner) => {
      const present = restoredOk.has(schema) && (await schemaExists(runner, schema));
      schemas[schema] = {
        tables: present ? await countTables(runner, schema) : null,
        migrationRows: (await readBookkeeping(runner, schema))?.rows ?? null,
      };
      if (schema === 'files' && present) fileRows = await listStoredFiles(runner);
    });
  }
  return { differences, schemas, fileRows };
}
