/**
 * The durable queue on the real database: claims with `FOR UPDATE SKIP LOCKED` and leases, so two
 * workers never take one job, a crashed worker's jobs come back when their lease lapses, parents are
 * never worked, and a cancel is seen at once even when the job's next poll is far away.
 */
import { jobs } from '@db/schema/jobs.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq, inArray } from 'drizzle-orm';
import type { JobRow } from '../../services/job-processor/src/domain.ts';
import { claimJobs, extendLeases, releaseJob } from '../../services/job-processor/src/job-queue.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

let testDb: TestDatabase;
const T0 = new Date('2031-03-01T12:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
}, 60_000);

afterAll(async () => {
  await testDb.drop();
});

/** Inserts jobs on a service of their own (so other suites' jobs in a shared database never interfere). */
async function insertJobs(serviceId: string, rows: Partial<typeof jobs.$inferInsert>[]): Promise<JobRow[]> {
  const userId = crypto.randomUUID();
  return testDb.database.db
    .insert(jobs)
    .values(
      rows.map((row, i) => ({
        id: Bun.randomUUIDv7(),
        userId,
        name: `queue job ${i}`,
        serviceId,
        state: 'queued',
        createdAt: at(i),
        updatedAt: at(i),
        ...row,
      })),
    )
    .returning();
}

const claim = (serviceId: string, owner: string, now: Date, limit = 100, leaseMs = 60_000) =>
  claimJobs(testDb.database.db, { owner, limit, leaseMs, now, serviceIds: [serviceId] });

describe('claimJobs', () => {
  it('never gives one job to two claimers', async () => {
    const serviceId = crypto.randomUUID();
    const inserted = await insertJobs(serviceId, Array.from({ length: 40 }, () => ({})));
    const rounds = await Promise.all(Array.from({ length: 8 }, (_, i) => claim(serviceId, `worker-${i}`, at(1_000), 7)));
    const ids = rounds.flat().map((j) => j.id);
    expect(new Set(ids).size).toBe(ids.length);
    const rest = await claim(serviceId, 'late', at(1_000));
    expect(ids.length + rest.length).toBe(inserted.length);
    const rows = await testDb.database.db.select().from(jobs).where(eq(jobs.serviceId, serviceId));
    for (const row of rows) {
      const owner = rounds.findIndex((round) => round.some((j) => j.id === row.id));
      expect(row.leaseOwner).toBe(owner >= 0 ? `worker-${owner}` : 'late');
      expect(row.leaseExpiresAt).toEqual(at(61_000));
    }
  });

  it('gives a crashed worker\'s jobs to another once the lease has expired', async () => {
    const serviceId = crypto.randomUUID();
    await insertJobs(serviceId, [{}, {}]);
    const first = await claim(serviceId, 'crashed', at(0), 10, 5_000);
    expect(first).toHaveLength(2);
    expect(await claim(serviceId, 'other', at(4_999))).toHaveLength(0);
    const second = await claim(serviceId, 'other', at(5_000));
    expect(second.map((j) => j.id).sort()).toEqual(first.map((j) => j.id).sort());
    expect(second.every((j) => j.leaseOwner === 'other')).toBe(true);
  });

  it('keeps a job whose lease was extended and frees it when released', async () => {
    const serviceId = crypto.randomUUID();
    const [job] = await insertJobs(serviceId, [{}]);
    await claim(serviceId, 'a', at(0), 10, 5_000);
    expect(await extendLeases(testDb.database.db, { owner: 'a', jobIds: [job!.id], leaseMs: 5_000, now: at(4_000) })).toEqual([job!.id]);
    expect(await extendLeases(testDb.database.db, { owner: 'b', jobIds: [job!.id], leaseMs: 5_000, now: at(4_000) })).toEqual([]);
    expect(await claim(serviceId, 'b', at(6_000))).toHaveLength(0);
    await releaseJob(testDb.database.db, { owner: 'b', jobId: job!.id });
    expect(await claim(serviceId, 'b', at(6_000))).toHaveLength(0);
    await releaseJob(testDb.database.db, { owner: 'a', jobId: job!.id });
    expect((await claim(serviceId, 'b', at(6_000))).map((j) => j.id)).toEqual([job!.id]);
  });

  it('claims only work that is due: queued, crashed submissions and due polls; never parents or ended jobs', async () => {
    const serviceId = crypto.randomUUID();
    const [parent] = await testDb.database.db
      .insert(jobs)
      .values({ id: Bun.randomUUIDv7(), userId: crypto.randomUUID(), name: 'parent', serviceId: null, state: 'queued', createdAt: at(0), updatedAt: at(0) })
      .returning();
    const rows = await insertJobs(serviceId, [
      { name: 'queued, never scheduled' },
      { name: 'queued, due', nextPollAt: at(500) },
      { name: 'queued, later', nextPollAt: at(60_000) },
      { name: 'submitting, worker died', state: 'submitting', leaseOwner: 'dead', leaseExpiresAt: at(100) },
      { name: 'submitting, worker alive', state: 'submitting', leaseOwner: 'alive', leaseExpiresAt: at(60_000) },
      { name: 'running, poll due', state: 'running', nextPollAt: at(900) },
      { name: 'running, poll later', state: 'running', nextPollAt: at(300_000) },
      { name: 'exporting, due', state: 'exporting', nextPollAt: at(1_000) },
      { name: 'completed', state: 'completed', nextPollAt: at(0) },
      { name: 'failed', state: 'failed' },
      { name: 'child of parent', parentId: parent!.id, nextPollAt: at(200) },
    ]);
    const claimed = await claim(serviceId, 'w', at(1_000));
    expect(claimed.map((j) => j.name)).toEqual([
      // Never-scheduled first, then by next poll time.
      'queued, never scheduled',
      'submitting, worker died',
      'child of parent',
      'queued, due',
      'running, poll due',
      'exporting, due',
    ]);
    expect(rows).toHaveLength(11);
    const parentClaims = await claimJobs(testDb.database.db, { owner: 'w2', limit: 1000, leaseMs: 1000, now: at(1_000) });
    expect(parentClaims.some((j) => j.id === parent!.id)).toBe(false);
    // Whatever else the shared database holds, give it back untouched by the lease.
    await Promise.all(parentClaims.map((j) => releaseJob(testDb.database.db, { owner: 'w2', jobId: j.id })));
  });

  it('claims a job cancelled since its last write at once, and not again until its next poll', async () => {
    const serviceId = crypto.randomUUID();
    const [job] = await insertJobs(serviceId, [{ state: 'running', nextPollAt: at(300_000), updatedAt: at(0) }]);
    expect(await claim(serviceId, 'w', at(1_000))).toHaveLength(0);
    await testDb.database.db.update(jobs).set({ cancelRequestedAt: at(2_000) }).where(eq(jobs.id, job!.id));
    const claimed = await claim(serviceId, 'w', at(3_000));
    expect(claimed.map((j) => j.id)).toEqual([job!.id]);
    // The worker looked (a write bumps updated_at) and asked to look again later.
    await testDb.database.db
      .update(jobs)
      .set({ updatedAt: at(3_000), nextPollAt: at(8_000), leaseOwner: null, leaseExpiresAt: null })
      .where(eq(jobs.id, job!.id));
    expect(await claim(serviceId, 'w', at(4_000))).toHaveLength(0);
    expect(await claim(serviceId, 'w', at(8_000))).toHaveLength(1);
  });

  it('claims nothing for an empty service list or a zero limit', async () => {
    const serviceId = crypto.randomUUID();
    await insertJobs(serviceId, [{}]);
    expect(await claimJobs(testDb.database.db, { owner: 'w', limit: 10, leaseMs: 1000, now: at(0), serviceIds: [] })).toEqual([]);
    expect(await claim(serviceId, 'w', at(0), 0)).toEqual([]);
    const rows = await testDb.database.db.select().from(jobs).where(inArray(jobs.serviceId, [serviceId]));
    expect(rows[0]!.leaseOwner).toBeNull();
  });
});
