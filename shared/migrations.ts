/**
 * Applies a service's committed drizzle-kit migrations at start. All services serialize on one
 * transaction-scoped Postgres advisory lock, so replicas (and services sharing a database) can start
 * together: the first applies, the others wait and then find nothing left to do.
 */
import { max, sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { bigint, pgSchema, serial, text } from 'drizzle-orm/pg-core';
import { join } from 'node:path';
import type { Database } from './db.ts';

/** Bookkeeping lives in the `drizzle` schema (as drizzle-kit expects), one table per service schema. */
const bookkeeping = pgSchema('drizzle');

function migrationsTable(schema: string) {
  return bookkeeping.table(`__migrations_${schema}`, {
    id: serial('id').primaryKey(),
    hash: text('hash').notNull(),
    createdAt: bigint('created_at', { mode: 'number' }),
  });
}

export interface MigrateResult {
  applied: number;
  total: number;
}

/**
 * Applies pending migrations from `<migrationsDir>/<schema>` in one transaction.
 * A migration counts as applied when its folder timestamp is not newer than the last recorded one.
 */
export async function migrate(database: Database, options: { schema: string; migrationsDir: string }): Promise<MigrateResult> {
  if (!/^[a-z_][a-z0-9_]*$/.test(options.schema)) throw new Error(`invalid schema name ${options.schema}`);
  const migrations = readMigrationFiles({ migrationsFolder: join(options.migrationsDir, options.schema) });
  const table = migrationsTable(options.schema);
  const newest = migrations.reduce((max, m) => Math.max(max, m.folderMillis), 0);
  // The common start (nothing pending) needs one query and no lock; a missing table means a first start.
  const recorded = await database.db
    .select({ last: max(table.createdAt) })
    .from(table)
    .then((rows) => rows[0]?.last ?? 0, () => 0);
  if (recorded >= newest) return { applied: 0, total: migrations.length };
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('federated-imputation:migrations'))`);
    await tx.execute(sql`create schema if not exists "drizzle"`);
    await tx.execute(
      sql.raw(
        `create table if not exists "drizzle"."__migrations_${options.schema}" (id serial primary key, hash text not null, created_at bigint)`,
      ),
    );
    const [row] = await tx.select({ last: max(table.createdAt) }).from(table);
    const last = row?.last ?? 0;
    let applied = 0;
    for (const migration of migrations) {
      if (migration.folderMillis <= last) continue;
      for (const statement of migration.sql) {
        if (statement.trim()) await tx.execute(sql.raw(statement));
      }
      await tx.insert(table).values({ hash: migration.hash, createdAt: migration.folderMillis });
      applied += 1;
    }
    return { applied, total: migrations.length };
  });
}
