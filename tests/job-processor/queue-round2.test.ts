/**
 * The queue's second round of round-trip cuts, held to its behaviour: a state change of a job without a
 * parent writes its row, history line and events (and, when it frees a slot, wakes the user's next
 * waiting job) in one statement, without BEGIN/COMMIT, and writes nothing at all when someone else changed
 * the job first; a child's change still re-derives its parent in one transaction; and a job whose user is
 * at the server's active-job limit is deferred by one UPDATE (no lock, no transaction, nothing sent),
 * while a job with a free slot still goes through the locked count and is submitted once.
 *
 * Statements are counted by a spy session under drizzle, as in queue-efficiency.test.ts.
 */
import { jobHistory, jobs, outbox } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';
import { createLogger } from '@shared/log.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import type { JobRow, JobTarget } from '../../services/job-processor/src/domain.ts';
import { transition } from '../../services/job-processor/src/job-transitions.ts';
import type { JobWorkerDeps } from '../../services/job-processor/src/job-worker.ts';
import type { CloudgeneFake } from '../fakes/cloudgene.ts';
import { createJobWorkerHarness, type JobValues, type JobWorkerHarness, type WorkerTestUser } from '../support/job-worker-harness.ts';

const logger = createLogger({ level: 'silent' });
const adapters = createAdapters({ timeoutMs: 10_000, workflow: { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' } });

let h: JobWorkerHarness;

beforeAll(async () => {
  h = await createJobWorkerHarness({ name: 'queue-round2', adapters, logger });
}, 60_000);

afterAll(() => h.close(), 30_000);

/** The same database seen through a session that records each statement run outside a transaction, and `BEGIN` for each transaction. */
function spyOn(db: Db): { db: Db; kinds: () => string[]; reset: () => void } {
  const statements: string[] = [];
  const real = (db as unknown as { session: Record<string, (...args: unknown[]) => unknown> }).session;
  const session = Object.create(real) as typeof real;
  session.prepareQuery = function (this: unknown, query: unknown, ...rest: unknown[]) {
    statements.push((query as { sql: string }).sql);
    return real.prepareQuery!.call(this, query, ...rest);
  };
  session.transaction = function (this: unknown, ...args: unknown[]) {
    statements.push('BEGIN');
    return real.transaction!.apply(this, args);
  };
  return {
    db: Object.create(db, { session: { value: session } }) as Db,
    kinds: () => statements.map((s) => s.split(/\s/)[0]!.toLowerCase()),
    reset: () => void statements.splice(0),
  };
}

let clock = Date.now();

async function insertJob(target: JobTarget, user: WorkerTestUser, values: JobValues): Promise<JobRow> {
  clock += 1;
  return h.insertJob(target, user, { createdAt: new Date(clock), updatedAt: new Date(clock), ...values });
}

function worker(target: JobTarget, extra: Partial<JobWorkerDeps> = {}) {
  return h.worker({ owner: `r2-${crypto.randomUUID().slice(0, 8)}`, now: () => clock, serviceIds: [target.service.id], ...extra });
}

const outboxOf = async (jobId: string) =>
  (await h.db.select().from(outbox)).filter((row) => (row.payload as { data: { jobId?: string } }).data.jobId === jobId);

describe('a state change', () => {
  it('writes the row, its history line and its events in one statement, the events carrying the error code written', async () => {
    const { fake } = await h.cloudgene({ progression: 'manual' });
    const target = h.cloudgeneTarget(fake);
    const user = await h.userFor(target, null);
    const job = await insertJob(target, user, { name: 'one statement', state: 'running', externalId: 'x-1', errorCode: 'stale_code', nextPollAt: new Date(clock + 3_600_000) });
    const spy = spyOn(h.db);
    const now = new Date(clock);

    const failed = await transition(spy.db, job, 'failed', { message: 'the server failed it', set: { errorMessage: 'boom' }, now });
    expect(spy.kinds()).toEqual(['with']);
    expect(failed!.state).toBe('failed');
    expect(failed!.finishedAt!.getTime()).toBe(now.getTime());
    const row = await h.jobRow(job.id);
    expect(row.state).toBe('failed');
    expect(row.errorMessage).toBe('boom');
    const history = await h.historyOf(job.id);
    expect(history.map((line) => [line.state, line.message])).toEqual([['failed', 'the server failed it']]);
    const events = await outboxOf(job.id);
    expect(events.map((e) => e.type).sort()).toEqual(['job.failed', 'job.status_changed']);
    for (const event of events) {
      const payload = event.payload as { id: string; userId: string; data: Record<string, unknown> };
      expect(payload.id).toBe(event.id);
      expect(payload.userId).toBe(user.userId);
      // Not set by this change: the code the row carries, read from the row the statement wrote.
      expect(payload.data).toMatchObject({ jobId: job.id, previous: 'running', state: 'failed', message: 'the server failed it', errorCode: 'stale_code' });
    }
  });

  it('writes nothing, no history line and no event, when someone else changed the job first', async () => {
    const { fake } = await h.cloudgene({ progression: 'manual' });
    const target = h.cloudgeneTarget(fake);
    const user = await h.userFor(target, null);
    const job = await insertJob(target, user, { name: 'raced', state: 'running', externalId: 'x-2', nextPollAt: new Date(clock + 3_600_000) });
    // An operator cancelled it meanwhile: the worker's copy still says running.
    await h.db.update(jobs).set({ state: 'cancelled' }).where(eq(jobs.id, job.id));

    expect(await transition(h.db, job, 'completed', { message: 'done', set: { progress: 100 }, now: new Date(clock) })).toBeNull();
    expect((await h.jobRow(job.id)).state).toBe('cancelled');
    expect(await h.historyOf(job.id)).toEqual([]);
    expect(await outboxOf(job.id)).toEqual([]);
    expect(await h.db.select().from(jobHistory).where(eq(jobHistory.jobId, job.id))).toEqual([]);
  });

  it("that frees a slot wakes the user's oldest waiting job in the same statement", async () => {
    const { fake } = await h.cloudgene({ progression: 'manual' });
    const target = h.cloudgeneTarget(fake);
    const user = await h.userFor(target, null);
    const later = new Date(clock + 3_600_000);
    const ending = await insertJob(target, user, { name: 'ending', state: 'running', externalId: 'x-3', nextPollAt: later });
    const waiting = await insertJob(target, user, { name: 'waiting', state: 'queued', pollCount: 1, nextPollAt: later });
    const younger = await insertJob(target, user, { name: 'younger', state: 'queued', pollCount: 1, nextPollAt: later });
    const spy = spyOn(h.db);
    const now = new Date(clock);

    await transition(spy.db, ending, 'completed', { message: '4 result files stored', now });
    expect(spy.kinds()).toEqual(['with']);
    expect((await h.jobRow(waiting.id)).nextPollAt!.getTime()).toBe(now.getTime());
    expect((await h.jobRow(younger.id)).nextPollAt!.getTime()).toBe(later.getTime());
  });
});

describe('a job whose user is at the active-job limit', () => {
  async function atLimit(fake: CloudgeneFake, token: string) {
    const target = h.cloudgeneTarget(fake);
    const user = await h.userFor(target, token);
    const later = new Date(clock + 3_600_000);
    // Two jobs the server runs for the user (the catalogue's limit is two), not due for a poll.
    const holders = [
      await insertJob(target, user, { name: 'holder 1', state: 'running', externalId: 'held-1', nextPollAt: later }),
      await insertJob(target, user, { name: 'holder 2', state: 'queued', externalId: 'held-2', nextPollAt: later }),
    ];
    return { target, user, holders };
  }

  it('is deferred by one UPDATE after the claim: no transaction, no lock, nothing sent to the server', async () => {
    const { fake, token } = await h.cloudgene({ progression: 'manual' });
    const { target, user } = await atLimit(fake, token);
    const job = await insertJob(target, user, { name: 'waiting' });
    const spy = spyOn(h.db);
    const owner = `r2-${crypto.randomUUID().slice(0, 8)}`;
    const w = worker(target, { db: spy.db, owner });

    expect(await w.runOnce()).toBe(1);
    expect(spy.kinds()).toEqual(['update', 'update']);
    const row = await h.jobRow(job.id);
    expect(row.state).toBe('queued');
    expect(row.externalId).toBeNull();
    expect(row.submitStartedAt).toBeNull();
    expect(row.pollCount).toBe(1);
    expect(row.leaseOwner).toBeNull();
    expect(row.leaseExpiresAt).toBeNull();
    expect(row.nextPollAt!.getTime()).toBeGreaterThan(clock);
    expect(await h.historyOf(job.id)).toEqual([]);
    expect(fake.control.requestsTo('/api/v2/jobs/submit', 'POST')).toEqual([]);
  });

  it('goes through the locked count and is submitted once when a slot is free', async () => {
    const { fake, token } = await h.cloudgene({ progression: 'manual', maxActiveJobs: 2 });
    const { target, user, holders } = await atLimit(fake, token);
    // One holder ended: one slot free.
    await h.db.update(jobs).set({ state: 'completed', finishedAt: new Date(clock), nextPollAt: null }).where(eq(jobs.id, holders[0]!.id));
    const job = await insertJob(target, user, { name: 'goes ahead' });
    const spy = spyOn(h.db);
    const w = worker(target, { db: spy.db });

    expect(await w.runOnce()).toBe(1);
    // The unlocked deferral found a free slot (nothing written), then the quota transaction moved it to submitting.
    expect(spy.kinds().slice(0, 3)).toEqual(['update', 'update', 'begin']);
    const row = await h.jobRow(job.id);
    expect(row.state).toBe('running');
    expect(row.externalId).not.toBeNull();
    expect(row.pollCount).toBe(0);
    expect(fake.control.requestsTo('/api/v2/jobs/submit', 'POST')).toHaveLength(1);
    expect((await h.historyOf(job.id)).map((line) => line.state)).toEqual(['submitting', 'running']);
  });

  it('with a cancel pending is cancelled, not deferred, and never submitted', async () => {
    const { fake, token } = await h.cloudgene({ progression: 'manual' });
    const { target, user } = await atLimit(fake, token);
    const job = await insertJob(target, user, { name: 'cancelled while waiting', submitStartedAt: new Date(clock - 10), externalName: 'fip-x' });
    const now = new Date(clock);
    await h.db.update(jobs).set({ cancelRequestedAt: now, nextPollAt: now, updatedAt: now }).where(eq(jobs.id, job.id));
    const w = worker(target);

    expect(await w.runOnce()).toBe(1);
    const row = await h.jobRow(job.id);
    expect(row.state).toBe('cancelled');
    expect(fake.control.requestsTo('/api/v2/jobs/submit', 'POST')).toEqual([]);
  });
});
