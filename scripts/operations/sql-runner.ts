/**
 * The one query shape the operations need, over either driver: a postgres.js connection (reserved, so
 * a transaction and everything counted in it stay on one session) or an embedded PGlite.
 */
import type { PGlite } from '@electric-sql/pglite';
import type { Db } from '@shared/db.ts';
import { sql, type SQL } from 'drizzle-orm';
import type { ReservedSql } from 'postgres';

export interface SqlRunner {
  query<T extends Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

export function postgresRunner(connection: ReservedSql): SqlRunner {
  return {
    query: async <T extends Record<string, unknown>>(text: string, params: unknown[] = []) =>
      (await connection.unsafe(text, params as never[])) as unknown as T[],
  };
}

export function pgliteRunner(db: PGlite): SqlRunner {
  return {
    query: async <T extends Record<string, unknown>>(text: string, params: unknown[] = []) => (await db.query<T>(text, params)).rows,
  };
}

/** A count or bigint as a number, whichever type the driver chose for it. */
export function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint' || typeof value === 'string') return Number(value);
  throw new Error(`expected a number, got ${typeof value}`);
}

/** Runs `fn` on one connection to `url`, then closes it. */
export async function withPostgresRunner<T>(url: string, fn: (runner: SqlRunner) => Promise<T>): Promise<T> {
  const { default: postgres } = await import('postgres');
  const client = postgres(url, { max: 1, connect_timeout: 10, onnotice: () => {}, connection: { application_name: 'fip-restore' } });
  try {
    const connection = await client.reserve();
    try {
      return await fn(postgresRunner(connection));
    } finally {
      connection.release();
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

/**
 * A SqlRunner over a drizzle database (either driver), for code that already holds one: `$n`
 * placeholders become drizzle parameters (so the text must not hold a `$` of its own, as none of the
 * operations' queries do).
 */
export function drizzleRunner(db: Db): SqlRunner {
  return {
    async query<T extends Record<string, unknown>>(text: string, params: unknown[] = []) {
      const parts = text.split(/\$(\d+)/);
      const chunks: SQL[] = [];
      parts.forEach((part, i) => chunks.push(i % 2 === 0 ? sql.raw(part) : sql`${params[Number(part) - 1]}`));
      const result = await db.execute(sql.join(chunks));
      return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as T[];
    },
  };
}
