/**
 * Test databases: with DATABASE_URL set (CI), a fresh PostgreSQL database per call, dropped
 * afterwards; otherwise the process's one in-memory PGlite (it costs seconds and ~1 GiB to start,
 * so every test file shares it).
 */
import { openDatabase, type Database } from '@shared/db.ts';
import { migrate } from '@shared/migrations.ts';
import postgres from 'postgres';
import { resolve } from 'node:path';

export const MIGRATIONS_DIR = resolve(import.meta.dir, '../../db/migrations');
export const SERVICE_SCHEMAS = ['users', 'registry', 'jobs', 'files', 'notify', 'monitor'] as const;

export interface TestDatabase {
  database: Database;
  /** The database's URL when it is a real PostgreSQL one. */
  url: string | undefined;
  drop(): Promise<void>;
}

let sharedPglite: Promise<Database> | undefined;

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    sharedPglite ??= openDatabase({ pgliteDir: 'memory://' });
    return { database: await sharedPglite, url: undefined, drop: async () => {} };
  }
  const name = `fip_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = withDatabaseName(adminUrl, name);
  const database = await openDatabase({ url, maxConnections: 5 });
  return {
    database,
    url,
    async drop() {
      await database.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

/** Applies every service's migrations. */
export async function migrateAll(database: Database): Promise<void> {
  for (const schema of SERVICE_SCHEMAS) await migrate(database, { schema, migrationsDir: MIGRATIONS_DIR });
}

export function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** A postgres URL nothing listens on, for readiness-failure tests. */
export const UNREACHABLE_DATABASE_URL = 'postgres://fip:fip@127.0.0.1:1/unreachable';
