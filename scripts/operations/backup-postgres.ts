/**
 * Backup of PostgreSQL-held schemas (distributed mode, or `npm start` with DATABASE_URL): per schema,
 * `pg_dump -Fc -n <schema>` and a dump of its migration bookkeeping table, all from the exported
 * snapshot of the schema's database, with row counts taken inside that snapshot. The bookkeeping
 * (`drizzle.__migrations_<schema>`) gets a dump of its own because it lives outside the schema and
 * pg_dump ignores -n once -t is given; without it a restored database would look unmigrated.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { redactUrl } from './cli-args.ts';
import { mapLimit, sha256File } from './checksum.ts';
import type { ModeBackup, ModeBackupContext } from './backup-mode.ts';
import type { Manifest, SchemaEntry } from './manifest.ts';
import { readJournal, tagAt } from './migrations-journal.ts';
import type { PgTools } from './pg-tools.ts';
import { SERVICE_SCHEMAS, type ServiceSchema } from './platform-schemas.ts';
import { databaseKey, openSnapshot, type DatabaseSnapshot } from './postgres-snapshot.ts';
import { listStoredFiles } from './stored-files.ts';
import { countTables, readBookkeeping, schemaExists, serverVersion } from './table-counts.ts';

interface Group {
  url: string;
  schemas: ServiceSchema[];
}

export async function backupPostgres(urls: Record<ServiceSchema, string>, pg: PgTools, context: ModeBackupContext & { jobs: number }): Promise<ModeBackup> {
  const groups = new Map<string, Group>();
  for (const schema of SERVICE_SCHEMAS) {
    const key = databaseKey(urls[schema]);
    const group = groups.get(key) ?? { url: urls[schema], schemas: [] };
    group.schemas.push(schema);
    groups.set(key, group);
  }
  const dbDir = join(context.dir, 'db');
  await mkdir(dbDir);
  const snapshots: DatabaseSnapshot[] = [];
  const started = performance.now();
  const timings: Record<string, number> = {};
  try {
    // Opened back to back, so separate databases' snapshots are as close in time as they can be.
    for (const group of groups.values()) snapshots.push(await openSnapshot(group.url));
    const createdAt = new Date();
    const databases: Manifest['databases'] = [];
    const schemas: Record<string, SchemaEntry> = {};
    const snapshotOf = new Map<ServiceSchema, DatabaseSnapshot>();
    for (const [index, group] of [...groups.values()].entries()) {
      const snapshot = snapshots[index]!;
      databases.push({ url: redactUrl(group.url), serverVersion: await serverVersion(snapshot.runner), schemas: group.schemas, snapshot: snapshot.id });
      for (const schema of group.schemas) {
        snapshotOf.set(schema, snapshot);
        if (!(await schemaExists(snapshot.runner, schema))) {
          throw new Error(`schema ${schema} does not exist in ${redactUrl(group.url)}: run \`npm run migrate\` (or start the service) first`);
        }
        const bookkeeping = await readBookkeeping(snapshot.runner, schema);
        schemas[schema] = {
          database: index,
          tables: await countTables(snapshot.runner, schema),
          migrations: bookkeeping && {
            table: bookkeeping.table,
            rows: bookkeeping.rows,
            last: tagAt(await readJournal(context.migrationsDir, schema), bookkeeping.lastCreatedAt),
            lastCreatedAt: bookkeeping.lastCreatedAt,
          },
        };
      }
    }
    const filesRows = await listStoredFiles(snapshotOf.get('files')!.runner);
    timings.snapshotAndCounts = Math.round(performance.now() - started);
    const copying = context.copyFiles(filesRows);
    copying.catch(() => {});

    const rowsIn = (schema: ServiceSchema) => Object.values(schemas[schema]!.tables).reduce((a, b) => a + b, 0);
    const tasks = SERVICE_SCHEMAS.flatMap((schema) => [
      { schema, file: `${schema}.dump`, what: { schema } as { schema: string } | { table: string }, rows: rowsIn(schema) },
      ...(schemas[schema]!.migrations ? [{ schema, file: `${schema}.migrations.dump`, what: { table: schemas[schema]!.migrations!.table }, rows: 0 }] : []),
    ]);
    // Largest first: the biggest schema's dump is the critical path, the small ones fill in beside it.
    tasks.sort((a, b) => b.rows - a.rows);
    context.log(`dumping ${SERVICE_SCHEMAS.length} schemas from ${groups.size} database(s), ${context.jobs} at a time`);
    await mapLimit(tasks, context.jobs, async (task) => {
      await pg.dump({ url: urls[task.schema], file: join(dbDir, task.file), what: task.what, snapshot: snapshotOf.get(task.schema)!.id });
      const { sha256, bytes } = await sha256File(join(dbDir, task.file));
      const entry = { file: task.file, bytes, sha256 };
      if ('schema' in task.what) schemas[task.schema]!.dump = entry;
      else schemas[task.schema]!.migrations!.dump = entry;
    });
    // The snapshots are released before waiting for the files: holding one open keeps VACUUM from
    // cleaning up behind it for as long as a large storage copy takes.
    await Promise.all(snapshots.map((s) => s.close()));
    timings.dumps = Math.round(performance.now() - started - timings.snapshotAndCounts);
    return { createdAt, databases, schemas, files: await copying, timings };
  } finally {
    await Promise.all(snapshots.map((s) => s.close()));
  }
}
