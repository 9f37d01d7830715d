/**
 * The six PostgreSQL schemas the platform's database services own, in the order operations handle
 * them. Listed here rather than taken from services/catalog.ts because importing the catalogue loads
 * every service's app; tests/operations checks that the two agree.
 */
export const SERVICE_SCHEMAS = ['users', 'registry', 'jobs', 'files', 'notify', 'monitor'] as const;

export type ServiceSchema = (typeof SERVICE_SCHEMAS)[number];

/** Where shared/migrations.ts keeps each schema's migration bookkeeping. */
export const BOOKKEEPING_SCHEMA = 'drizzle';

export function bookkeepingTable(schema: string): string {
  return `__migrations_${schema}`;
}

export function isServiceSchema(name: string): name is ServiceSchema {
  return (SERVICE_SCHEMAS as readonly string[]).includes(name);
}

/** A double-quoted SQL identifier (names come from the catalogue, but a quote must never break out). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
