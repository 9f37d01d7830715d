/**
 * Every change of a job's state goes through here: the row, its history line and its events are
 * written in one transaction (DESIGN §5 outbox), events only for real transitions (never per poll),
 * and a child's change re-derives its federated parent in the same transaction.
 */
import { jobHistory, jobs, outbox } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';
import { outboxRow } from '@shared/outbox.ts';
import { and, eq } from 'drizzle-orm';
import { TERMINAL_STATES, type JobRow, type ParentState } from './domain.ts';
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
 */
export async function transition(
  tx: Db,
  job: JobRow,
  to: string,
  options: { message?: string | null; set?: JobChanges; now: Date },
): Promise<JobRow | null> {
  const { now } = options;
  const changed = to !== job.state;
  const set: JobChanges = { ...options.set, state: to, updatedAt: now };
  if (changed && TERMINAL_STATES.has(to)) {
    set.finishedAt = now;
    set.leaseOwner = null;
    set.leaseExpiresAt = null;
    set.nextPollAt = null;
  }
  if (changed && (to === 'running' || to === 'exporting') && !job.startedAt) set.startedAt = now;
  const [updated] = await tx
    .update(jobs)
    .set(set)
    .where(and(eq(jobs.id, job.id), eq(jobs.state, job.state)))
    .returning();
  if (!updated) return null;
  if (changed || options.message) {
    await tx.insert(jobHistory).values({ id: Bun.randomUUIDv7(), jobId: job.id, at: now, state: to, message: options.message ?? null });
  }
  if (changed) {
    await tx.insert(outbox).values(eventsFor(updated, job.state, options.message ?? null));
    if (updated.parentId) await rederiveParent(tx, updated.parentId, now);
  }
  return updated;
}

/** Re-derives a parent from its children; locks the parent row so concurrent children serialize here. */
export async function rederiveParent(tx: Db, parentId: string, now: Date): Promise<void> {
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
