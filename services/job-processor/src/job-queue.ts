/**
 * The durable job queue is the `jobs` table itself (DESIGN §2 step 5): a worker claims jobs that need
 * work with `FOR UPDATE SKIP LOCKED` and a lease, so replicas never take the same job and a crashed
 * worker's jobs come back once their lease expires. Claims are short transactions; the work happens
 * outside them and reschedules the job through `next_poll_at`.
 */
import { jobs } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';
import { and, asc, eq, inArray, isNotNull, isNull, lte, notInArray, or, sql } from 'drizzle-orm';
import { TERMINAL_STATES, type JobRow } from './domain.ts';

const ENDED = [...TERMINAL_STATES];

/**
 * What makes a job claimable at `now`: a service of its own (parents are derived, never worked),
 * not ended, lease free or expired, and either due (`next_poll_at` unset or past: a queued job to
 * submit, a `submitting` one whose worker died, a running one to poll) or cancelled by the user since
 * a worker last touched it.
 */
function claimable(now: Date, serviceIds: string[] | undefined) {
  return and(
    serviceIds ? inArray(jobs.serviceId, serviceIds) : isNotNull(jobs.serviceId),
    notInArray(jobs.state, ENDED),
    or(isNull(jobs.leaseExpiresAt), lte(jobs.leaseExpiresAt, now)),
    or(
      isNull(jobs.nextPollAt),
      lte(jobs.nextPollAt, now),
      // Every worker write bumps updated_at, so a cancel newer than the last write has not been seen yet.
      and(isNotNull(jobs.cancelRequestedAt), lte(jobs.updatedAt, jobs.cancelRequestedAt)),
    ),
  );
}

/**
 * Claims up to `limit` jobs for `owner` until `now + leaseMs`: oldest due first (never-scheduled jobs
 * ahead of rescheduled ones). Rows another transaction has locked are skipped, not waited for.
 */
export async function claimJobs(
  db: Db,
  options: { owner: string; limit: number; leaseMs: number; now: Date; /** Only jobs on these services (a dedicated pool). */ serviceIds?: string[] },
): Promise<JobRow[]> {
  const { owner, limit, leaseMs, now, serviceIds } = options;
  if (limit <= 0 || serviceIds?.length === 0) return [];
  return db.transaction(async (tx) => {
    const due = await tx
      .select({ id: jobs.id })
      .from(jobs)
      .where(claimable(now, serviceIds))
      .orderBy(sql`${jobs.nextPollAt} asc nulls first`, asc(jobs.createdAt))
      .limit(limit)
      .for('update', { skipLocked: true });
    if (due.length === 0) return [];
    const claimed = await tx
      .update(jobs)
      .set({ leaseOwner: owner, leaseExpiresAt: new Date(now.getTime() + leaseMs) })
      .where(
        inArray(
          jobs.id,
          due.map((row) => row.id),
        ),
      )
      .returning();
    // UPDATE … RETURNING has no order: hand the jobs out in queue order.
    const position = new Map(due.map((row, i) => [row.id, i]));
    return claimed.sort((a, b) => position.get(a.id)! - position.get(b.id)!);
  });
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
