/**
 * One consistent view of a PostgreSQL database for a backup: a REPEATABLE READ, READ ONLY transaction
 * that exports its snapshot. pg_dump imports it (`--snapshot`) and the row counts are taken inside the
 * transaction itself, so the manifest's counts are exactly what the dumps hold, however busy the
 * database is. Schemas sharing a database share the snapshot, so they are consistent with each other
 * too; separate databases cannot share one (PostgreSQL snapshots are per database).
 */
import postgres from 'postgres';
import { postgresRunner, type SqlRunner } from './sql-runner.ts';

export interface DatabaseSnapshot {
  /** The exported snapshot id for `pg_dump --snapshot`. */
  readonly id: string;
  /** Queries run inside the snapshot's transaction. */
  readonly runner: SqlRunner;
  /** Ends the transaction (the snapshot is valid only until then). */
  close(): Promise<void>;
}

export async function openSnapshot(url: string): Promise<DatabaseSnapshot> {
  const client = postgres(url, {
    max: 1,
    connect_timeout: 10,
    // fetch_types stays on: postgres.js 3.4.9 never answers reserve() on a new connection without it.
    onnotice: () => {},
    connection: { application_name: 'fip-backup' },
  });
  try {
    const connection = await client.reserve();
    await connection.unsafe('begin transaction isolation level repeatable read, read only');
    const [row] = await connection.unsafe<{ id: string }[]>('select pg_export_snapshot() as id');
    let closed = false;
    return {
      id: row!.id,
      runner: postgresRunner(connection),
      async close() {
        if (closed) return;
        closed = true;
        await connection.unsafe('commit').catch(() => {});
        connection.release();
        await client.end({ timeout: 5 });
      },
    };
  } catch (err) {
    await client.end({ timeout: 1 }).catch(() => {});
    throw err;
  }
}

/** The same database regardless of the password in the URL: schemas grouped by it share a snapshot. */
export function databaseKey(url: string): string {
  const parsed = new URL(url);
  parsed.password = '';
  return parsed.toString();
}
