/**
 * The queue's efficiency work, held to its behaviour: a claim is one statement leasing at most `limit`
 * jobs in queue order and never one job twice; a step's last write gives the lease back (a quiet poll is
 * a single UPDATE), except while a cancel is pending, which the worker then acts on under its lease; a
 * job that ends wakes its user's next job waiting for a slot in the same transaction; busy deferrals
 * back off; and on real PostgreSQL the claim reads the `jobs_claimable` partial index, not every job.
 *
 * Statements are counted by a spy session under drizzle (every executed query goes through
 * `session.prepareQuery`, every BEGIN through `session.transaction`), so the counts do not depend on
 * the driver. The worker tests drive the real Cloudgene adapter against its fake with the worker's
 * injectable clock, as worker.test.ts does.
 */
import { jobs } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';
import { createLogger } from '@shared/log.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq, inArray, sql } from 'drizzle-orm';
import postgres from 'postgres';
import type { ProtocolAdapter } from '../../services/job-processor/src/adapters/adapter.ts';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import type { JobRow, JobTarget } from '../../services/job-processor/src/domain.ts';
import { claimJobs, releaseJob } from '../../services/job-processor/src/job-queue.ts';
import { transition } from '../../services/job-processor/src/job-transitions.ts';
import type { JobWorkerDeps } from '../../services/job-processor/src/job-worker.ts';
import { createPollSchedule } from '../../services/job-processor/src/poll-schedule.ts';
import type { CloudgeneFake, CloudgeneFakeOptions } from '../fakes/cloudgene.ts';
import { createJobWorkerHarness, type JobWorkerHarness, type WorkerTestUser } from '../support/job-worker-harness.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

const logger = createLogger({ level: 'silent' });
const adapters = createAdapters({ timeoutMs: 10_000, workflow: { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' } });

let h: JobWorkerHarness;

beforeAll(async () => {
  h = await createJobWorkerHarness({ name: 'queue-efficiency', adapters, logger });
}, 60_000);

afterAll(() => h.close(), 30_000);

// ---- a spy on the statements a Db runs ---------------------------------------------------------

interface Spy {
  db: Db;
  /** Every statement executed outside a transaction, and `BEGIN` for each transaction opened. */
  statements: { sql: string; params: unknown[] }[];
  reset(): void;
}

/**
 * The same database seen through a session that records what runs. Statements inside a transaction run
 * on the transaction's own session and are not listed; the transaction itself is, as `BEGIN`.
 */
function spyOn(db: Db): Spy {
  const statements: Spy['statements'] = [];
  const real = (db as unknown as { session: Record<string, (...args: unknown[]) => unknown> }).session;
  const session = Object.create(real) as typeof real;
  session.prepareQuery = function (this: unknown, query: unknown, ...rest: unknown[]) {
    const q = query as { sql: string; params: unknown[] };
    statements.push({ sql: q.sql, params: q.params });
    return real.prepareQuery!.call(this, query, ...rest);
  };
  session.transaction = function (this: unknown, ...args: unknown[]) {
    statements.push({ sql: 'BEGIN', params: [] });
    return real.transaction!.apply(this, args);
  };
  const spied = Object.create(db, { session: { value: session } }) as Db;
  return { db: spied, statements, reset: () => statements.splice(0) };
}

/** The text of releaseJob's statement (a lease given back on its own), learned from releaseJob itself. */
async function releaseStatementText(): Promise<string> {
  const spy = spyOn(h.db);
  await releaseJob(spy.db, { owner: 'nobody', jobId: crypto.randomUUID() });
  expect(spy.statements).toHaveLength(1);
  return spy.statements[0]!.sql;
}

// ---- rows and fakes -----------------------------------------------------------------------------

const T0 = new Date('2032-05-01T08:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
/** The worker's clock; tests move it so scheduled work becomes due. */
let clock = Date.now();

/** Bare queue rows on a service of their own (no target: the claim never looks at it). */
async function insertQueueRows(serviceId: string, rows: Partial<typeof jobs.$inferInsert>[]): Promise<JobRow[]> {
  const userId = crypto.randomUUID();
  return h.db
    .insert(jobs)
    .values(rows.map((row, i) => ({ id: Bun.randomUUIDv7(), userId, name: `q${i}`, serviceId, state: 'queued', createdAt: at(i), updatedAt: at(i), ...row })))
    .returning();
}

const rowsOf = (ids: string[]) => h.db.select().from(jobs).where(inArray(jobs.id, ids));
const jobRow = (id: string) => h.jobRow(id);

/** A Cloudgene fake that moves a job on only when told (`fake.control.advance`/`complete`), and its token. */
const cloudgene = (options: CloudgeneFakeOptions = {}) => h.cloudgene({ progression: 'manual', ...options });
/** A catalogue entry frozen into the job: the fake, with the catalogue's limit of two active jobs per user. */
const cloudgeneTarget = (fake: CloudgeneFake) => h.cloudgeneTarget(fake);
/** A user with one uploaded input and the fake's token in the vault. */
const userFor = (target: JobTarget, token: string) => h.userFor(target, token);

async function insertJob(target: JobTarget, user: WorkerTestUser, name: string): Promise<JobRow> {
  // Creation times one millisecond apart keep "oldest first" unambiguous.
  clock += 1;
  return h.insertJob(target, user, { name, createdAt: new Date(clock), updatedAt: new Date(clock) });
}

function worker(target: JobTarget, extra: Partial<JobWorkerDeps> = {}) {
  return h.worker({ owner: `qe-${crypto.randomUUID().slice(0, 8)}`, now: () => clock, serviceIds: [target.service.id], ...extra });
}

/** Moves the clock to the job's next poll (never back) and runs one round. */
async function roundAt(w: ReturnType<typeof worker>, id: string): Promise<JobRow> {
  const row = await jobRow(id);
  if (row.nextPollAt) clock = Math.max(clock, row.nextPollAt.getTime());
  await w.runOnce();
  return jobRow(id);
}

const expectLeaseGivenBack = (row: JobRow) => {
  expect(row.leaseOwner).toBeNull();
  expect(row.leaseExpiresAt).toBeNull();
  expect(row.nextPollAt!.getTime()).toBeGreaterThan(clock);
};

// ---- 1. the claim ---------------------------------------------------------------------------------

describe('a claim', () => {
  it('is one statement, without a transaction, that leases at most `limit` jobs in queue order', async () => {
    const serviceId = crypto.randomUUID();
    const rows = await insertQueueRows(serviceId, [
      { name: 'poll 900', nextPollAt: at(900), createdAt: at(0) },
      { name: 'poll 100, newer', nextPollAt: at(100), createdAt: at(9) },
      { name: 'never scheduled, newer', createdAt: at(5) },
      { name: 'poll 100, older', nextPollAt: at(100), createdAt: at(1) },
      { name: 'not due', nextPollAt: at(50_000), createdAt: at(0) },
      { name: 'never scheduled, older', createdAt: at(2) },
      { name: 'poll 50', nextPollAt: at(50), createdAt: at(8) },
      { name: 'ended', state: 'completed', nextPollAt: at(0), createdAt: at(0) },
    ]);
    const spy = spyOn(h.db);
    const first = await claimJobs(spy.db, { owner: 'a', limit: 4, leaseMs: 30_000, now: at(1_000), serviceIds: [serviceId] });

    expect(spy.statements.map((s) => s.sql.split(' ')[0]!.toLowerCase())).toEqual(['update']);
    expect(first.map((j) => j.name)).toEqual(['never scheduled, older', 'never scheduled, newer', 'poll 50', 'poll 100, older']);
    // Exactly the jobs handed out were leased: none leased and dropped on the way.
    const leased = (await rowsOf(rows.map((r) => r.id))).filter((r) => r.leaseOwner !== null);
    expect(leased.map((r) => r.name).sort()).toEqual(first.map((j) => j.name).sort());
    expect(leased.every((r) => r.leaseOwner === 'a' && r.leaseExpiresAt!.getTime() === at(31_000).getTime())).toBe(true);

    const second = await claimJobs(h.db, { owner: 'b', limit: 4, leaseMs: 30_000, now: at(1_000), serviceIds: [serviceId] });
    expect(second.map((j) => j.name)).toEqual(['poll 100, newer', 'poll 900']);
    expect(await claimJobs(h.db, { owner: 'c', limit: 4, leaseMs: 30_000, now: at(1_000), serviceIds: [serviceId] })).toEqual([]);
  });

  it('never hands a job to two claimers racing on the same rows; together they take exactly the due jobs', async () => {
    for (let round = 0; round < 6; round++) {
      const serviceId = crypto.randomUUID();
      const rows = await insertQueueRows(serviceId, [
        ...Array.from({ length: 14 }, (_, i) => ({ name: `due ${i}`, nextPollAt: i % 3 === 0 ? null : at(10 * i), createdAt: at(i) })),
        { name: 'later', nextPollAt: at(60_000) },
        { name: 'leased by a live worker', leaseOwner: 'alive', leaseExpiresAt: at(60_000) },
        { name: 'failed', state: 'failed' },
      ]);
      const due = rows.filter((r) => r.name.startsWith('due')).map((r) => r.id);
      // Enough room for both to take everything: the only thing keeping them apart is the lock and the lease.
      const [a, b] = await Promise.all([
        claimJobs(h.db, { owner: 'racer-a', limit: 100, leaseMs: 30_000, now: at(1_000), serviceIds: [serviceId] }),
        claimJobs(h.db, { owner: 'racer-b', limit: 100, leaseMs: 30_000, now: at(1_000), serviceIds: [serviceId] }),
      ]);
      const idsA = a!.map((j) => j.id);
      const idsB = b!.map((j) => j.id);
      expect(idsA.filter((id) => idsB.includes(id))).toEqual([]);
      expect([...idsA, ...idsB].sort()).toEqual([...due].sort());
      const stored = await rowsOf(due);
      for (const row of stored) expect(row.leaseOwner).toBe(idsA.includes(row.id) ? 'racer-a' : 'racer-b');
    }
  });

  it('with small limits, racing claimers each take at most their limit and together the head of the queue', async () => {
    for (let round = 0; round < 6; round++) {
      const serviceId = crypto.randomUUID();
      const rows = await insertQueueRows(
        serviceId,
        Array.from({ length: 12 }, (_, i) => ({ name: `due ${i}`, nextPollAt: at(1_000 - 10 * i), createdAt: at(i) })),
      );
      // Queue order is by next poll time: the last inserted first.
      const head = [...rows].reverse().slice(0, 10).map((r) => r.id);
      const [a, b] = await Promise.all(
        ['racer-a', 'racer-b'].map((owner) => claimJobs(h.db, { owner, limit: 5, leaseMs: 30_000, now: at(1_000), serviceIds: [serviceId] })),
      );
      expect(a!.length).toBeLessThanOrEqual(5);
      expect(b!.length).toBeLessThanOrEqual(5);
      const ids = [...a!, ...b!].map((j) => j.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.sort()).toEqual([...head].sort());
      const leased = (await rowsOf(rows.map((r) => r.id))).filter((r) => r.leaseOwner !== null);
      expect(leased.map((r) => r.id).sort()).toEqual([...head].sort());
    }
  });
});

// ---- 2. the lease goes back with the step's last write -------------------------------------------

describe("a step's last write", () => {
  it('gives the lease back itself: after a state change, and a quiet poll is that single UPDATE', async () => {
    const release = await releaseStatementText();
    const { fake, token } = await cloudgene();
    const target = cloudgeneTarget(fake);
    const job = await insertJob(target, await userFor(target, token), 'lease');
    const spy = spyOn(h.db);
    const w = worker(target, { db: spy.db });
    const releases = () => spy.statements.filter((s) => s.sql === release);

    // Submission: queued → submitting → running (a state change that schedules the first poll).
    await w.runOnce();
    let row = await jobRow(job.id);
    expect(row.state).toBe('running');
    expectLeaseGivenBack(row);
    expect(releases()).toEqual([]);

    // First poll: the server still queues it (Cloudgene state 1), running → queued.
    spy.reset();
    row = await roundAt(w, job.id);
    expect(row.state).toBe('queued');
    expectLeaseGivenBack(row);
    expect(releases()).toEqual([]);

    // The server starts it: queued → running.
    fake.control.advance(row.externalId!);
    row = await roundAt(w, job.id);
    expect(row.state).toBe('running');
    expectLeaseGivenBack(row);
    expect(releases()).toEqual([]);

    // Quiet polls: nothing changed on the server. The round is the claim and one UPDATE, no BEGIN.
    for (let i = 1; i <= 2; i++) {
      spy.reset();
      const before = row.pollCount;
      row = await roundAt(w, job.id);
      expect(row.state).toBe('running');
      expect(row.pollCount).toBe(before + 1);
      expectLeaseGivenBack(row);
      expect(spy.statements.map((s) => s.sql.split(' ')[0]!.toLowerCase())).toEqual(['update', 'update']);
      expect(releases()).toEqual([]);
    }
    // The fake saw status polls only; nothing was cancelled or submitted again.
    expect(fake.control.requestsTo('/api/v2/jobs/submit', 'POST')).toHaveLength(1);
  });

  it('keeps the lease when a cancel arrives during the step, and the worker acts on the cancel in the same round', async () => {
    const release = await releaseStatementText();
    const { fake, token } = await cloudgene();
    const target = cloudgeneTarget(fake);
    const job = await insertJob(target, await userFor(target, token), 'cancel mid-step');
    const cancelDuringStatus = { armed: false };
    const leaseAtCancel: (string | null)[] = [];
    const base = adapters.cloudgene;
    // The real adapter, with the user's cancel landing while the status call is in flight.
    const adapter = new Proxy(base, {
      get(target, prop, receiver) {
        if (prop === 'status') {
          return async (...args: Parameters<ProtocolAdapter['status']>) => {
            const status = await base.status(...args);
            if (cancelDuringStatus.armed) {
              cancelDuringStatus.armed = false;
              // What POST /jobs/{id}/cancel writes for a job the server has (routes/jobs.ts).
              const now = new Date(clock);
              await h.db.update(jobs).set({ cancelRequestedAt: now, nextPollAt: now, updatedAt: now }).where(eq(jobs.id, job.id));
            }
            return status;
          };
        }
        if (prop === 'cancel') {
          return async (...args: Parameters<ProtocolAdapter['cancel']>) => {
            leaseAtCancel.push((await jobRow(job.id)).leaseOwner);
            return base.cancel(...args);
          };
        }
        return Reflect.get(target, prop, receiver);
      },
    }) as ProtocolAdapter;
    const spy = spyOn(h.db);
    const owner = `qe-cancel-${crypto.randomUUID().slice(0, 8)}`;
    const w = worker(target, { db: spy.db, owner, adapters: { ...adapters, cloudgene: adapter } });

    await w.runOnce();
    let row = await jobRow(job.id);
    expect(row.state).toBe('running');
    fake.control.advance(row.externalId!);
    row = await roundAt(w, job.id);
    row = await roundAt(w, job.id);
    expect(row.state).toBe('running');
    const pollsBefore = row.pollCount;

    // A quiet poll, with the cancel requested while the server was answering.
    cancelDuringStatus.armed = true;
    spy.reset();
    row = await roundAt(w, job.id);

    expect(cancelDuringStatus.armed).toBe(false);
    expect(row.state).toBe('cancelled');
    expect(row.cancelRequestedAt).not.toBeNull();
    expect(row.leaseOwner).toBeNull();
    expect(row.leaseExpiresAt).toBeNull();
    // The quiet poll's write kept the lease, so the cancel ran while this worker still held the job.
    expect(leaseAtCancel).toEqual([owner]);
    expect(fake.control.requestsTo(`/api/v2/jobs/${row.externalId}/cancel`, 'GET')).toHaveLength(1);
    expect(fake.control.jobs.get(row.externalId!)!.state).toBe(6);
    expect(row.pollCount).toBe(pollsBefore + 1);
    // Ending the job released the lease; no separate release statement was needed.
    expect(spy.statements.filter((s) => s.sql === release)).toEqual([]);
    // And nothing is left to do for it.
    expect(await w.runOnce()).toBe(0);
  });
});

// ---- 3. a freed slot wakes the user's next waiting job ---------------------------------------------

describe("a stalled worker's last write", () => {
  it('keeps the lease the worker that took the job over now holds, so no third worker claims it mid-step', async () => {
    const db = h.db;
    const serviceId = crypto.randomUUID();
    const t0 = new Date('2031-01-01T00:00:00Z');
    const ms = (n: number) => new Date(t0.getTime() + n);
    await db.insert(jobs).values({ id: Bun.randomUUIDv7(), userId: crypto.randomUUID(), name: 'stalled', serviceId, state: 'running', externalId: 'x', nextPollAt: t0, createdAt: t0, updatedAt: t0 });
    const [w1] = await claimJobs(db, { owner: 'w1', limit: 1, leaseMs: 1_000, now: ms(0), serviceIds: [serviceId] });
    // w1 stalls past its lease; w2 takes the job over.
    expect(await claimJobs(db, { owner: 'w2', limit: 1, leaseMs: 60_000, now: ms(2_000), serviceIds: [serviceId] })).toHaveLength(1);
    // w1 finally writes the end of its quiet poll, scheduling the next look.
    await transition(db, w1!, 'running', { set: { pollCount: 1, nextPollAt: ms(7_000) }, now: ms(3_000), releaseLease: 'w1' });
    const [after] = await db.select().from(jobs).where(eq(jobs.id, w1!.id));
    expect(after!.leaseOwner).toBe('w2');
    expect(await claimJobs(db, { owner: 'w3', limit: 1, leaseMs: 60_000, now: ms(8_000), serviceIds: [serviceId] })).toHaveLength(0);
  });
});

describe('a slot freeing', () => {
  it("wakes the user's oldest waiting job in the transaction that ended the first, so it is submitted next round without a 400", async () => {
    // The server's own limit equals the catalogue's: one submission too many would be refused with 400.
    const { fake, token } = await cloudgene({ maxActiveJobs: 2 });
    const target = cloudgeneTarget(fake);
    const user = await userFor(target, token);
    const w = worker(target);
    const first = await insertJob(target, user, 'first');
    const second = await insertJob(target, user, 'second');
    expect(await w.runOnce()).toBe(2);
    expect((await rowsOf([first.id, second.id])).map((r) => r.state)).toEqual(['running', 'running']);

    const third = await insertJob(target, user, 'third');
    const fourth = await insertJob(target, user, 'fourth');
    expect(await w.runOnce()).toBe(2);
    let [thirdRow, fourthRow] = [await jobRow(third.id), await jobRow(fourth.id)];
    for (const row of [thirdRow, fourthRow]) {
      expect(row.state).toBe('queued');
      expect(row.externalId).toBeNull();
      expect(row.pollCount).toBe(1);
      expect(row.leaseOwner).toBeNull();
      // The first busy deferral: 30 s.
      expect(row.nextPollAt!.getTime()).toBe(clock + 30_000);
    }
    const deferredUntil = thirdRow.nextPollAt!.getTime();

    // The server finishes the first job; its next poll (5 s on) retrieves the results and completes it.
    const firstRow = await jobRow(first.id);
    fake.control.complete(firstRow.externalId!);
    const ended = await roundAt(w, first.id);
    expect(ended.state).toBe('completed');
    expect(clock).toBeLessThan(deferredUntil);
    [thirdRow, fourthRow] = [await jobRow(third.id), await jobRow(fourth.id)];
    // Due now, at the very instant the first job ended: written by the transaction that ended it.
    expect(thirdRow.state).toBe('queued');
    expect(thirdRow.nextPollAt!.getTime()).toBeLessThanOrEqual(clock);
    expect(thirdRow.nextPollAt!.getTime()).toBe(ended.finishedAt!.getTime());
    // One slot freed, one job woken: the younger one keeps waiting.
    expect(fourthRow.nextPollAt!.getTime()).toBe(deferredUntil);

    // The next round, at the same time, submits the third.
    expect(await w.runOnce()).toBe(1);
    thirdRow = await jobRow(third.id);
    expect(thirdRow.state).toBe('running');
    expect(thirdRow.externalId).not.toBeNull();
    expect((await jobRow(fourth.id)).state).toBe('queued');

    const submits = fake.control.requestsTo('/api/v2/jobs/submit', 'POST');
    expect(submits.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(fake.control.requests.filter((r) => r.status === 400)).toEqual([]);

    // 4. Still no slot for the fourth when its deferral runs out: it waits twice as long this time.
    fourthRow = await roundAt(w, fourth.id);
    expect(fourthRow.state).toBe('queued');
    expect(fourthRow.pollCount).toBe(2);
    expect(fourthRow.nextPollAt!.getTime()).toBe(clock + 60_000);
    expect(fake.control.requestsTo('/api/v2/jobs/submit', 'POST')).toHaveLength(3);
  }, 30_000);
});

// ---- 4. busy deferrals back off -------------------------------------------------------------------

describe('busy deferrals', () => {
  it('double per deferral up to busyMaxMs; with no argument the delay is the old one', () => {
    const schedule = createPollSchedule({ jitter: 0 });
    expect(schedule.busyDelayMs()).toBe(30_000);
    expect([0, 1, 2, 3, 4, 5, 60, 10_000].map((n) => schedule.busyDelayMs(n))).toEqual([30_000, 60_000, 120_000, 240_000, 240_000, 240_000, 240_000, 240_000]);

    const custom = createPollSchedule({ jitter: 0, busyDelayMs: 1_000, busyMaxMs: 5_000 });
    expect(custom.busyDelayMs()).toBe(1_000);
    expect([0, 1, 2, 3, 4, 100].map((n) => custom.busyDelayMs(n))).toEqual([1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
    // The cap defaults to eight times the base.
    expect(createPollSchedule({ jitter: 0, busyDelayMs: 7_000 }).busyDelayMs(50)).toBe(56_000);
    // A negative count (never written, but cheap to guard) is the first deferral.
    expect(custom.busyDelayMs(-3)).toBe(1_000);
    // Jitter still applies around the backed-off value.
    expect(createPollSchedule({ jitter: 0.2, random: () => 0 }).busyDelayMs(1)).toBe(48_000);
  });
});

// ---- 5. the claim reads the partial index (real PostgreSQL) --------------------------------------

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

const planNodes = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(planNodes)];

describe.skipIf(!process.env.DATABASE_URL)('the claim on PostgreSQL (needs DATABASE_URL: PGlite plans are not the server\'s)', () => {
  let scratch: TestDatabase;
  let client: ReturnType<typeof postgres>;
  const serviceId = crypto.randomUUID();

  beforeAll(async () => {
    // A database of its own: the claim below runs over every service, and the statistics are this test's.
    scratch = await createTestDatabase();
    await migrateAll(scratch.database);
    client = postgres(scratch.url!, { max: 1, onnotice: () => {} });
    // Years of ended jobs, and a handful open.
    await client.unsafe(`
      insert into jobs.jobs (id, user_id, name, service_id, state, next_poll_at, created_at, updated_at, finished_at)
      select gen_random_uuid(), gen_random_uuid(), 'ended ' || i, $1::uuid,
             (array['completed', 'failed', 'cancelled', 'expired'])[1 + i % 4],
             timestamptz '2030-01-01' + i * interval '1 minute',
             timestamptz '2030-01-01' + i * interval '1 minute',
             timestamptz '2030-01-01' + i * interval '1 minute',
             timestamptz '2030-01-01' + i * interval '1 minute'
      from generate_series(1, 30000) as i`, [serviceId]);
    await insertOpen(scratch.database.db, serviceId);
    await client.unsafe('analyze jobs.jobs');
  }, 60_000);

  afterAll(async () => {
    await client?.end({ timeout: 5 });
    await scratch?.drop();
  }, 30_000);

  async function insertOpen(db: Db, service: string) {
    const userId = crypto.randomUUID();
    await db.insert(jobs).values(
      ['queued', 'queued', 'running', 'exporting', 'submitting'].map((state, i) => ({
        id: Bun.randomUUIDv7(),
        userId,
        name: `open ${i}`,
        serviceId: service,
        state,
        nextPollAt: i === 0 ? null : at(i * 1_000),
        createdAt: at(i),
        updatedAt: at(i),
      })),
    );
  }

  /** A parameter as an SQL literal, for EXECUTE (drizzle binds text, numbers and ISO timestamps here). */
  const literal = (value: unknown) => (typeof value === 'number' ? String(value) : `'${String(value).replaceAll("'", "''")}'`);

  /**
   * The plans PostgreSQL makes for the exact statement claimJobs sends (EXPLAIN does not run it): a
   * custom plan, as for its first executions, and the generic plan a pooled connection's prepared
   * statement settles on after that, which cannot see parameter values; the partial index must be
   * usable in both, which is why its predicate is spelled with constants.
   */
  async function claimPlans(serviceIds: string[] | undefined): Promise<Record<'custom' | 'generic', PlanNode[]>> {
    const spy = spyOn(scratch.database.db);
    await claimJobs(spy.db, { owner: 'explain', limit: 10, leaseMs: 60_000, now: at(1_000_000), serviceIds });
    expect(spy.statements).toHaveLength(1);
    // It ran, too: give its leases back so each test starts from the same queue.
    await scratch.database.db.update(jobs).set({ leaseOwner: null, leaseExpiresAt: null }).where(eq(jobs.leaseOwner, 'explain'));
    const { sql: text, params } = spy.statements[0]!;
    const plans = {} as Record<'custom' | 'generic', PlanNode[]>;
    // One connection (max 1), so the session settings and the prepared statement stay on it.
    await client.unsafe(`prepare claim_plan as ${text}`);
    try {
      for (const mode of ['custom', 'generic'] as const) {
        await client.unsafe(`set plan_cache_mode = force_${mode}_plan`);
        const [row] = await client.unsafe(`explain (format json) execute claim_plan(${params.map(literal).join(', ')})`);
        const plan = (row as Record<string, unknown>)['QUERY PLAN'];
        const root = (typeof plan === 'string' ? JSON.parse(plan) : plan) as { Plan: PlanNode }[];
        plans[mode] = planNodes(root[0]!.Plan);
      }
    } finally {
      await client.unsafe('deallocate claim_plan');
      await client.unsafe('reset plan_cache_mode');
    }
    return plans;
  }

  for (const [label, services] of [
    ['for every service', undefined],
    ['for a list of services', () => [serviceId]],
  ] as const) {
    it(`reads open jobs through jobs_claimable, never scanning the table, in custom and generic plans (${label})`, async () => {
      const plans = await claimPlans(services?.());
      for (const mode of ['custom', 'generic'] as const) {
        const scans = plans[mode].filter((n) => n['Relation Name'] === 'jobs').map((n) => `${n['Node Type']}${n['Index Name'] ? ` on ${n['Index Name']}` : ''}`);
        expect({ mode, claimable: scans.includes('Index Scan on jobs_claimable') }).toEqual({ mode, claimable: true });
        expect({ mode, seqScans: scans.filter((s) => s.startsWith('Seq Scan')) }).toEqual({ mode, seqScans: [] });
      }
    });
  }

  it('claims the open jobs only, out of the many ended ones', async () => {
    const claimed = await claimJobs(scratch.database.db, { owner: 'w', limit: 100, leaseMs: 60_000, now: at(1_000_000), serviceIds: [serviceId] });
    expect(claimed.map((j) => j.name)).toEqual(['open 0', 'open 1', 'open 2', 'open 3', 'open 4']);
    const [counted] = await scratch.database.db.select({ n: sql<number>`count(*)::int` }).from(jobs).where(eq(jobs.leaseOwner, 'w'));
    expect(counted!.n).toBe(5);
  });
});
