/**
 * The durable job queue is the `jobs` table itself (DESIGN §2 step 5): a worker claims jobs that need
 * work with `FOR UPDATE SKIP LOCKED` and a lease, so replicas never take the same job and a crashed
 * worker's jobs come back once their lease expires. A claim is one statement (select, lock and lease in
 * a single round trip, no explicit transaction); the work happens outside it and reschedules the job
 * through `next_poll_at`, releasing the lease with its last write.
 */
import { JOB_OPEN, jobs } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';
import { and, eq, inArray, isNotNull, isNull, lte, or, sql } from 'drizzle-orm';
import type { JobRow } from './domain.ts';

/**
 * What makes a job claimable at `now`: a service of its own (parents are derived, never worked),
 * not ended, lease free or expired, and either due (`next_poll_at` unset or past: a queued job to
 * submit, a `submitting` one whose worker died, a running one to poll) or cancelled by the user since
 * a worker last touched it. The first two conditions are the `jobs_claimable` index's predicate, word
 * for word, so the claim reads that index (open jobs only) in its order instead of every row ever made.
 */
function claimable(now: Date, serviceIds: string[] | undefined) {
  return and(
    isNotNull(jobs.serviceId),
    JOB_OPEN,
    serviceIds ? inArray(jobs.serviceId, serviceIds) : undefined,
    or(isNull(jobs.leaseExpiresAt), lte(jobs.leaseExpiresAt, now)),
    or(
      isNull(jobs.nextPollAt),
      lte(jobs.nextPollAt, now),
      // Every worker write bumps updated_at, so a cancel newer than the last write has not been seen yet.
      and(isNotNull(jobs.cancelRequestedAt), lte(jobs.updatedAt, jobs.cancelRequestedAt)),
    ),
  );
}

/** Queue order: never-scheduled jobs first, then by next poll time, then oldest first. */
function queueOrder(a: JobRow, b: JobRow): number {
  const pa = a.nextPollAt?.getTime() ?? -Infinity;
  const pb = b.nextPollAt?.getTime() ?? -Infinity;
  if (pa !== pb) return pa < pb ? -1 : 1;
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Claims up to `limit` jobs for `owner` until `now + leaseMs`: oldest due first (never-scheduled jobs
 * ahead of rescheduled ones). Rows another transaction has locked are skipped, not waited for. One
 * `UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED LIMIT n)) RETURNING *` statement: atomic on its
 * own, so it needs no BEGIN/COMMIT round trips and holds its row locks only while it runs.
 */
export async function claimJobs(
  db: Db,
  options: { owner: string; limit: number; leaseMs: number; now: Date; /** Only jobs on these services (a dedicated pool). */ serviceIds?: string[] },
): Promise<JobRow[]> {
  const { owner, limit, leaseMs, now, serviceIds } = options;
  if (limit <= 0 || serviceIds?.length === 0) return [];
  const due = db
    .select({ id: jobs.id })
    .from(jobs)
    .where(claimable(now, serviceIds))
    .orderBy(sql`${jobs.nextPollAt} asc nulls first`, sql`${jobs.createdAt} asc`)
    .limit(limit)
    .for('update', { skipLocked: true });
  const claimed = await db
    .update(jobs)
    .set({ leaseOwner: owner, leaseExpiresAt: new Date(now.getTime() + leaseMs) })
    // ARRAY(subquery) runs once as an init plan; `IN (subquery)` may be planned as a join that re-runs a
    // LIMIT … SKIP LOCKED subquery and leases rows it never returns.
    .where(sql`${jobs.id} = any(array(${due}))`)
    .returning();
  // UPDATE … RETURNING has no order: hand the jobs out in queue order.
  return claimed.sort(queueOrder);
}

/** Extends `owner`'s leases on `jobIds` (a heartbeat while work on them is in flight); answers the ids still held. */
export async function extendLeases(db: Db, options: { owner: string; jobIds: string[]; leaseMs: number; now: Date }): Promise<string[]> {
  if (options.jobIds.length === 0) return [];
  const rows = await db
    .update(jobs)
    .set({ leaseExpiresAt: new Date(options.now.getTime() + options.leaseMs) })
    .where(and(inArray(jobs.id, options.jobIds), eq(jobs.leaseOwner, options.owner)))
    .returning({ id: jobs.id });
  return rows.map((row) => row.id);
}

/** Gives a job back to the queue; its `next_poll_at` (set by the work just done) says when it is due again. */
export async function releaseJob(db: Db, options: { owner: string; jobId: string }): Promise<void> {
  await db
    .update(jobs)
    .set({ leaseOwner: null, leaseExpiresAt: null })
    .where(and(eq(jobs.id, options.jobId), eq(jobs.leaseOwner, options.owner)));
}
