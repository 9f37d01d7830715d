/**
 * Every change of a job's state goes through here: the row, its history line and its events are
 * written atomically (DESIGN §5 outbox; one statement, so a job without a parent needs no BEGIN/COMMIT),
 * events only for real transitions (never per poll), and a child's change re-derives its federated parent
 * in the same transaction.
 */
import { JOB_OPEN, jobHistory, jobs, outbox } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';
import { outboxRow } from '@shared/outbox.ts';
import { and, eq, getTableColumns, gt, isNull, sql, type SQL, type WithSubquery } from 'drizzle-orm';
import { TERMINAL_STATES, type JobRow, type ParentState } from './domain.ts';
import { holdsSlot } from './job-slots.ts';
import { parentProgress, parentState } from './parent-state.ts';

export type JobChanges = Partial<typeof jobs.$inferInsert>;

const SOURCE = 'job-processor';

function eventsFor(job: JobRow, previous: string, message: string | null) {
  const data = {
    jobId: job.id,
    parentId: job.parentId,
    name: job.name,
    serviceId: job.serviceId,
    previous,
    state: job.state,
    message,
    errorCode: job.errorCode,
  };
  const events = [outboxRow({ type: 'job.status_changed', source: SOURCE, userId: job.userId, data })];
  const final: Record<string, string> = { completed: 'job.completed', partial: 'job.completed', failed: 'job.failed', expired: 'job.failed', cancelled: 'job.cancelled' };
  // A child's ending is part of its parent's story: the parent announces the federated outcome once.
  const terminalEvent = job.parentId === null ? final[job.state] : undefined;
  if (terminalEvent) events.push(outboxRow({ type: terminalEvent, source: SOURCE, userId: job.userId, data }));
  return events;
}

/** Records newly accepted jobs (a parent and its children, or one job): history and `job.created` events. */
export async function recordCreated(tx: Db, created: JobRow[], now: Date): Promise<void> {
  await tx.insert(jobHistory).values(created.map((job) => ({ id: Bun.randomUUIDv7(), jobId: job.id, at: now, state: job.state, message: 'accepted' })));
  const top = created.filter((job) => job.parentId === null);
  await tx.insert(outbox).values(
    top.map((job) =>
      outboxRow({
        type: 'job.created',
        source: SOURCE,
        userId: job.userId,
        data: { jobId: job.id, name: job.name, state: job.state, children: created.filter((c) => c.parentId === job.id).map((c) => c.id) },
      }),
    ),
  );
}

/**
 * Moves `job` to `to` (with any other column changes) when it is still in the state the caller saw.
 * Answers the updated row, or null when someone else changed the job first (the caller re-reads).
 * Same state with no message: the changes are applied quietly (progress, steps, next poll).
 * Row, history line and events are one statement, atomic on its own; a child's change re-derives its
 * parent in further statements, so for a child `tx` must be a transaction.
 */
export async function transition(
  tx: Db,
  job: JobRow,
  to: string,
  options: {
    message?: string | null;
    set?: JobChanges;
    now: Date;
    /**
     * This write ends the worker's step (it schedules the next look): the owner of the lease to give back
     * in the same UPDATE instead of a statement of its own. Only that owner's lease: a worker that stalled
     * past its lease must not clear the lease of the worker that took the job over. Not while a cancel is
     * pending, either: the worker goes on to act on it under the lease and releases the job afterwards.
     */
    releaseLease?: string;
    /** A further condition on the row's UPDATE (with the state guard): null is answered when it does not hold. */
    where?: SQL;
  },
): Promise<JobRow | null> {
  const { now } = options;
  const changed = to !== job.state;
  const set: Record<string, unknown> = { ...options.set, state: to, updatedAt: now };
  if (options.releaseLease !== undefined) {
    const mine = sql`${jobs.cancelRequestedAt} is null and ${jobs.leaseOwner} = ${options.releaseLease}`;
    set.leaseOwner = sql`case when ${mine} then null else ${jobs.leaseOwner} end`;
    set.leaseExpiresAt = sql`case when ${mine} then null else ${jobs.leaseExpiresAt} end`;
  }
  if (changed && TERMINAL_STATES.has(to)) {
    set.finishedAt = now;
    set.leaseOwner = null;
    set.leaseExpiresAt = null;
    set.nextPollAt = null;
  }
  if (changed && (to === 'running' || to === 'exporting') && !job.startedAt) set.startedAt = now;
  const update = tx
    .update(jobs)
    .set(set as JobChanges)
    .where(and(eq(jobs.id, job.id), eq(jobs.state, job.state), options.where))
    .returning();
  const history = changed || options.message;
  const wakes = changed && holdsSlot(job) && TERMINAL_STATES.has(to);
  if (!history) {
    const [updated] = await update;
    return updated ?? null;
  }
  // The row, its history line, its events and (when a slot frees) the user's next waiting job, in one
  // statement: atomic without BEGIN/COMMIT, one round trip instead of four or five. Every insert reads
  // the CTE `u`, so nothing is written when the guarded UPDATE found the job changed by someone else.
  const u = tx.$with('u', getTableColumns(jobs)).as(update.getSQL());
  const parts: WithSubquery[] = [u, tx.$with('h', {}).as(sql`insert into ${jobHistory} (id, job_id, at, state, message) select ${Bun.randomUUIDv7()}::uuid, u.id, ${now.toISOString()}::timestamptz, u.state, ${options.message ?? null}::text from u`)];
  if (changed) {
    // The events' data is known before the write except errorCode (kept from the row unless set), so that is read from the row written.
    const events = eventsFor({ ...job, state: to } as JobRow, job.state, options.message ?? null);
    const values = sql.join(
      events.map((e) => sql`(${e.id}::uuid, ${e.type}::text, ${JSON.stringify(e.payload)}::jsonb)`),
      sql`, `,
    );
    parts.push(
      tx.$with('o', {}).as(
        sql`insert into ${outbox} (id, type, payload) select v.id, v.type, jsonb_set(v.payload, '{data,errorCode}', coalesce(to_jsonb(u.error_code), 'null'::jsonb)) from u cross join (values ${values}) as v(id, type, payload)`,
      ),
    );
  }
  if (wakes) parts.push(tx.$with('w', {}).as(sql`update ${jobs} set next_poll_at = ${now.toISOString()}::timestamptz where ${jobs.id} = any(array(${nextQueued(tx, job, now)})) and exists (select 1 from u)`));
  const [updated] = await tx
    .with(...parts)
    .select()
    .from(u);
  if (!updated) return null;
  if (changed && updated.parentId) await rederiveParent(tx, updated.parentId, now);
  return updated;
}

/**
 * The job to wake when one that held a slot of the user's on its server ends (the ending statement sets its
 * next poll to now): the oldest of their jobs deferred because every slot was taken, so it becomes due at
 * once instead of when its busy delay runs out (which stays the fallback).
 * Only jobs waiting for a slot (never submitted, no failure backoff running, no cancel) are woken; a
 * row another transaction holds is skipped, never waited for. One job per freed slot, so the others do
 * not all come back to find it taken again.
 */
function nextQueued(tx: Db, job: JobRow, now: Date) {
  return tx
    .select({ id: jobs.id })
    .from(jobs)
    .where(
      and(
        eq(jobs.userId, job.userId),
        eq(jobs.serviceId, job.serviceId!),
        JOB_OPEN,
        eq(jobs.state, 'queued'),
        isNull(jobs.externalId),
        isNull(jobs.cancelRequestedAt),
        eq(jobs.attempts, 0),
        gt(jobs.nextPollAt, now),
      ),
    )
    .orderBy(jobs.createdAt)
    .limit(1)
    .for('update', { skipLocked: true });
}

/** Re-derives a parent from its children; locks the parent row so concurrent children serialize here. */
async function rederiveParent(tx: Db, parentId: string, now: Date): Promise<void> {
  const [parent] = await tx.select().from(jobs).where(eq(jobs.id, parentId)).for('update');
  if (!parent) return;
  const children = await tx.select({ state: jobs.state, progress: jobs.progress }).from(jobs).where(eq(jobs.parentId, parentId));
  const state: ParentState = parentState(children);
  const progress = parentProgress(children);
  if (state === parent.state) {
    if (progress !== parent.progress) await tx.update(jobs).set({ progress, updatedAt: now }).where(eq(jobs.id, parentId));
    return;
  }
  const ended = children.filter((c) => TERMINAL_STATES.has(c.state));
  const message = TERMINAL_STATES.has(state)
    ? `${children.filter((c) => c.state === 'completed').length} of ${children.length} targets completed`
    : ended.length > 0
      ? `${ended.length} of ${children.length} targets ended`
      : null;
  await transition(tx, parent, state, { message, set: { progress }, now });
}
