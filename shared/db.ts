/**
 * Database access: drizzle over postgres.js when a URL is given, otherwise an embedded PGlite
 * (one instance per process, shared by every service in standalone mode). Both expose the same
 * drizzle query builder; each service keeps its tables under its own pgSchema.
 */
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';

export type Db = PgDatabase<PgQueryResultHKT, Record<string, never>>;

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** One round trip; rejects when the database is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** `postgres://` URL; when absent an embedded PGlite is used. */
  url?: string;
  /** PGlite data directory; `memory://` for an in-memory instance. */
  pgliteDir?: string;
  /** postgres.js pool size. */
  maxConnections?: number;
  /** Seconds to wait for a connection before failing (keeps readiness honest when the server is gone). */
  connectTimeoutSeconds?: number;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) return openPostgres(options.url, options);
  return openPglite(options.pgliteDir ?? 'memory://');
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const client = postgres(url, {
    max: options.maxConnections ?? 10,
    connect_timeout: options.connectTimeoutSeconds ?? 3,
    // Skips a type-catalogue query on every new connection (~10 ms of each start); drizzle parses
    // array columns from their text form itself.
    fetch_types: false,
    idle_timeout: 60,
    // postgres.js waits backoff(n) seconds before the n-th reconnect, counted across the pool, up to 20 s
    // by default: a restart that cuts ten pooled connections at once left queries waiting 10-20 s after
    // the server was back (tests/e2e/fault-postgres.test.ts). A second at most keeps a restart's cost
    // close to its length.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    onnotice: () => {},
    connection: { application_name: 'federated-imputation' },
  });
  const db = drizzle(client) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    ping: async () => {
      await client`select 1`;
    },
    close: () => client.end({ timeout: 5 }),
  };
}

async function openPglite(dataDir: string): Promise<Database> {
  // Imported lazily: bundles for containers mark PGlite external and never load it.
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  if (dataDir !== 'memory://') {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dataDir, { recursive: true });
  }
  const client = await PGlite.create(dataDir);
  const db = drizzle(client) as unknown as Db;
  return {
    kind: 'pglite',
    db,
    ping: async () => {
      await client.query('select 1');
    },
    close: () => client.close(),
  };
}


/** The SQLSTATE of a database error, looking through drizzle's wrapper; undefined for other errors. */
export function sqlState(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** postgres.js and socket error codes of a connection that failed or was cut. */
const CONNECTION_ERROR_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * True when `err` says the database cannot be used right now rather than that the query was wrong:
 * a refused or cut connection, a server shutting down or starting (57P0x), too many clients (53300),
 * or any connection exception (08xxx). Such a request may succeed when retried.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const state = sqlState(err);
  if (state && (state.startsWith('08') || state === '53300' || state.startsWith('57P'))) return true;
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
  }
  return false;
}

/** True when `err` is a unique-constraint violation (SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  return sqlState(err) === '23505';
}
