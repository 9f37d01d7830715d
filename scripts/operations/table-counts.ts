/**
 * What the manifest records about each schema, read through one SqlRunner so it comes from the same
 * snapshot as the dump: its tables with their row counts, and its migration bookkeeping.
 */
import { BOOKKEEPING_SCHEMA, bookkeepingTable, quoteIdent } from './platform-schemas.ts';
import { toNumber, type SqlRunner } from './sql-runner.ts';

export async function schemaExists(runner: SqlRunner, schema: string): Promise<boolean> {
  const rows = await runner.query<{ found: unknown }>('select count(*) as found from pg_catalog.pg_namespace where nspname = $1', [schema]);
  return toNumber(rows[0]?.found) > 0;
}

/** Ordinary and partitioned tables of `schema`, by name. */
export async function tablesOf(runner: SqlRunner, schema: string): Promise<string[]> {
  const rows = await runner.query<{ name: string }>(
    `select c.relname as name from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') order by c.relname`,
    [schema],
  );
  return rows.map((r) => r.name);
}

/** Exact row counts (`count(*)`, not the planner's estimate) of every table in `schema`, in one query. */
export async function countTables(runner: SqlRunner, schema: string): Promise<Record<string, number>> {
  const tables = await tablesOf(runner, schema);
  if (tables.length === 0) return {};
  const query = tables
    .map((table, i) => `select $${i + 1}::text as name, count(*) as n from ${quoteIdent(schema)}.${quoteIdent(table)}`)
    .join(' union all ');
  const rows = await runner.query<{ name: string; n: unknown }>(query, tables);
  const counts: Record<string, number> = {};
  for (const table of tables) counts[table] = 0;
  for (const row of rows) counts[row.name] = toNumber(row.n);
  return counts;
}

export interface Bookkeeping {
  /** `drizzle.__migrations_<schema>`. */
  table: string;
  rows: number;
  /** The newest applied migration's timestamp (drizzle's `created_at`, the journal's `when`). */
  lastCreatedAt: number | null;
}

/** The schema's migration bookkeeping; null when the table does not exist (never migrated). */
export async function readBookkeeping(runner: SqlRunner, schema: string): Promise<Bookkeeping | null> {
  const table = `${BOOKKEEPING_SCHEMA}.${bookkeepingTable(schema)}`;
  const [found] = await runner.query<{ oid: unknown }>('select to_regclass($1)::text as oid', [`${quoteIdent(BOOKKEEPING_SCHEMA)}.${quoteIdent(bookkeepingTable(schema))}`]);
  if (!found?.oid) return null;
  const [row] = await runner.query<{ n: unknown; last: unknown }>(
    `select count(*) as n, max(created_at) as last from ${quoteIdent(BOOKKEEPING_SCHEMA)}.${quoteIdent(bookkeepingTable(schema))}`,
  );
  return { table, rows: toNumber(row?.n), lastCreatedAt: row?.last == null ? null : toNumber(row.last) };
}

/** `select version()`, e.g. "PostgreSQL 15.20 ..." or "PostgreSQL 18.7 (PGlite 0.5.17) ...". */
export async function serverVersion(runner: SqlRunner): Promise<string> {
  const [row] = await runner.query<{ version: string }>('select version() as version');
  return row?.version ?? 'unknown';
}
