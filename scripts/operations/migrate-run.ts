/**
 * `npm run migrate`: applies every schema's committed migrations with the platform's own migrator
 * (shared/migrations.ts: one transaction under the advisory lock, so it is safe while replicas start),
 * and says per schema what it applied. Running it again applies nothing.
 */
import { openDatabase, type Database } from '@shared/db.ts';
import { migrate } from '@shared/migrations.ts';
import { existsSync } from 'node:fs';
import { redactUrl, type DatabaseTargets } from './cli-args.ts';
import { readJournal, tagAt, tagsBetween } from './migrations-journal.ts';
import { assertPgliteNotInUse } from '@shared/pglite-in-use.ts';
import { SERVICE_SCHEMAS, type ServiceSchema } from './platform-schemas.ts';
import { databaseKey } from './postgres-snapshot.ts';
import { drizzleRunner } from './sql-runner.ts';
import { readBookkeeping } from './table-counts.ts';

export interface SchemaMigration {
  schema: ServiceSchema;
  /** Where (URL without password, or the PGlite directory). */
  database: string;
  /** Tags applied by this run, oldest first. */
  applied: string[];
  /** Migrations the schema has in the repository. */
  total: number;
  /** The newest applied migration's tag after the run. */
  current: string | null;
}

export async function runMigrations(targets: DatabaseTargets, migrationsDir: string, log: (line: string) => void): Promise<SchemaMigration[]> {
  const groups: { where: string; open: () => Promise<Database>; schemas: ServiceSchema[] }[] = [];
  if (targets.kind === 'pglite') {
    if (existsSync(targets.pgliteDir)) await assertPgliteNotInUse(targets.pgliteDir);
    else log(`creating the embedded database in ${targets.pgliteDir}`);
    groups.push({ where: targets.pgliteDir, open: () => openDatabase({ pgliteDir: targets.pgliteDir }), schemas: [...SERVICE_SCHEMAS] });
  } else {
    const byKey = new Map<string, (typeof groups)[number]>();
    for (const schema of SERVICE_SCHEMAS) {
      const url = targets.urls[schema];
      const group = byKey.get(databaseKey(url)) ?? { where: redactUrl(url), open: () => openDatabase({ url, maxConnections: 2, connectTimeoutSeconds: 10 }), schemas: [] };
      group.schemas.push(schema);
      byKey.set(databaseKey(url), group);
    }
    groups.push(...byKey.values());
  }

  const results: SchemaMigration[] = [];
  for (const group of groups) {
    const database = await group.open();
    try {
      const runner = drizzleRunner(database.db);
      for (const schema of group.schemas) {
        const journal = await readJournal(migrationsDir, schema);
        const before = (await readBookkeeping(runner, schema))?.lastCreatedAt ?? 0;
        const { total } = await migrate(database, { schema, migrationsDir });
        const after = (await readBookkeeping(runner, schema))?.lastCreatedAt ?? 0;
        results.push({ schema, database: group.where, applied: tagsBetween(journal, before, after), total, current: tagAt(journal, after || null) });
      }
    } finally {
      await database.close();
    }
  }
  return results;
}
