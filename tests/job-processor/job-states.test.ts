/**
 * The state lists kept in more than one place agree: `TERMINAL_STATES` (what the worker and API treat
 * as ended) is exactly what `JOB_OPEN` (the partial indexes' and the claim's SQL) leaves out, the states
 * split cleanly into queued / active / ended, and the slot rule says the same as a row check and as SQL.
 */
import { JOB_OPEN, jobs } from '@db/schema/jobs.ts';
import { JOB_STATE_VALUES } from '@shared/schemas/jobs.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, eq } from 'drizzle-orm';
import { ACTIVE_STATES, TERMINAL_STATES } from '../../services/job-processor/src/domain.ts';
import { HOLDS_SLOT, holdsSlot } from '../../services/job-processor/src/job-slots.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

let testDb: TestDatabase;
const serviceId = crypto.randomUUID();
const userId = crypto.randomUUID();
const T0 = new Date('2031-05-01T12:00:00Z');

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  // Every state, with and without a server-side id; plus a parent (no service) in each state.
  const rows = JOB_STATE_VALUES.flatMap((state) => [
    { state, serviceId, externalId: null, name: `${state} unsent` },
    { state, serviceId, externalId: `ext-${state}`, name: `${state} sent` },
    { state, serviceId: null, externalId: null, name: `${state} parent` },
  ]);
  await testDb.database.db.insert(jobs).values(rows.map((row) => ({ ...row, id: Bun.randomUUIDv7(), userId, createdAt: T0, updatedAt: T0 })));
}, 60_000);

afterAll(async () => {
  await testDb.drop();
}, 60_000);

describe('job state lists', () => {
  it('TERMINAL_STATES is exactly the states JOB_OPEN excludes', async () => {
    const open = await testDb.database.db.selectDistinct({ state: jobs.state }).from(jobs).where(and(eq(jobs.userId, userId), JOB_OPEN));
    const expected = JOB_STATE_VALUES.filter((s) => !TERMINAL_STATES.has(s));
    expect(open.map((r) => r.state).sort()).toEqual([...expected].sort());
    // And TERMINAL_STATES names no state the API does not know.
    expect([...TERMINAL_STATES].every((s) => (JOB_STATE_VALUES as readonly string[]).includes(s))).toBe(true);
  });

  it('every state is exactly one of queued, active or ended', () => {
    for (const state of JOB_STATE_VALUES) {
      const kinds = [state === 'queued', ACTIVE_STATES.includes(state as never), TERMINAL_STATES.has(state)].filter(Boolean);
      expect({ state, kinds: kinds.length }).toEqual({ state, kinds: 1 });
    }
  });

  it('the slot rule picks the same jobs as a row check and as SQL', async () => {
    const db = testDb.database.db;
    const all = await db.select().from(jobs).where(eq(jobs.userId, userId));
    const bySql = await db.select({ id: jobs.id }).from(jobs).where(and(eq(jobs.userId, userId), HOLDS_SLOT));
    const byRow = all.filter(holdsSlot).map((r) => r.id);
    expect(bySql.map((r) => r.id).sort()).toEqual(byRow.sort());
    // Not vacuous: the active states and a server-queued job hold slots; an unsent queued job and a parent do not.
    const names = all.filter(holdsSlot).map((r) => r.name).sort();
    expect(names).toEqual(['exporting sent', 'exporting unsent', 'queued sent', 'running sent', 'running unsent', 'submitting sent', 'submitting unsent']);
  });
});
