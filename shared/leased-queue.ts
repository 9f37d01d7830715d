/**
 * Durable work queues in a table (the outbox relay, the email and webhook senders): rows are due when
 * their `next_attempt_at` has passed, and workers on any number of replicas take them without a
 * transaction held during the slow part (HTTP, SMTP).
 *
 * Claiming is a short transaction: the caller's query selects a batch of due rows `FOR UPDATE SKIP
 * LOCKED` (each queue has its own conditions and order), and every selected row's `next_attempt_at`
 * is pushed forward by a lease before the locks are let go. Until the lease runs out no other worker
 * sees the rows as due; a worker that dies mid-batch loses nothing, since its rows come due again then
 * (at the cost of a repeat, which is why these queues deliver at least once).
 */
import { and, inArray, isNotNull, lt } from 'drizzle-orm';
import type { AnyPgColumn, PgTable, PgUpdateSetSource } from 'drizzle-orm/pg-core';
import type { Db } from './db.ts';

/** A transaction handle, as `db.transaction` passes it. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** A queue table: rows keyed by `id`, due again at `nextAttemptAt`. */
export type LeasedQueueTable = PgTable & { id: AnyPgColumn; nextAttemptAt: AnyPgColumn };

/**
 * Claims due rows of `table` until `leaseUntil`. `lockDue` must select them `.for('update', {
 * skipLocked: true })` (so concurrent claimers skip each other's rows instead of waiting) and may
 * read more in the same transaction; the rows it returns are the ones leased and handed back.
 */
export async function claimDueRows<T extends LeasedQueueTable, R extends { id: string }>(
  db: Db,
  table: T,
  leaseUntil: Date,
  lockDue: (tx: Tx) => Promise<R[]>,
): Promise<R[]> {
  return db.transaction(async (tx) => {
    const rows = await lockDue(tx);
    if (rows.length > 0) {
      await tx
        .update(table)
        // Every queue table has the column; the generic table type cannot say so to `set`.
        .set({ nextAttemptAt: leaseUntil } as PgUpdateSetSource<T>)
        .where(
          inArray(
            table.id,
            rows.map((r) => r.id),
          ),
        );
    }
    return rows;
  });
}

/** Rows one prune deletes at most, so pruning a large backlog never turns into one long statement. */
export const PRUNE_BATCH = 1_000;

/**
 * Deletes up to `limit` rows of `table` whose `stampedAt` (a sent, delivered or given-up time) is set
 * and before `cutoff`; returns how many. What is left goes in later rounds.
 */
export async function pruneStampedBefore(
  db: Db,
  table: PgTable & { id: AnyPgColumn },
  stampedAt: AnyPgColumn,
  cutoff: Date,
  limit = PRUNE_BATCH,
): Promise<number> {
  const old = db
    .select({ id: table.id })
    .from(table)
    .where(and(isNotNull(stampedAt), lt(stampedAt, cutoff)))
    .limit(limit);
  const deleted = await db.delete(table).where(inArray(table.id, old)).returning({ id: table.id });
  return deleted.length;
}
