/**
 * job-processor's `GET /internal/stats/jobs` on the real database: monitoring's service token only;
 * one user's jobs (never another's) or the platform's; jobs counted as users submitted them (a
 * federated job once, its children never); success rate over jobs that ended with an outcome; the five
 * newest; and the queue's oldest wait since a job was last queued.
 */
import { jobs } from '@db/schema/jobs.ts';
import type { ServiceApp } from '@shared/app.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { JOB_STATE_VALUES } from '@shared/schemas/jobs.ts';
import { JobStatsSchema } from '@shared/schemas/stats.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { isNull } from 'drizzle-orm';
import { createApp } from '../../services/job-processor/src/app.ts';
import { filesClient, registryClient, vaultClient } from '../../services/job-processor/src/platform-clients.ts';
import { insertJob } from '../support/job-rows.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

const NOW = Date.parse('2030-06-01T12:00:00Z');
let testDb: TestDatabase;
let app: ServiceApp;
const alice = crypto.randomUUID();
const bob = crypto.randomUUID();
const ids: Record<string, string> = {};

const get = async (path: string, token: string | null) => app.request(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
const asMonitoring = async (path: string) => get(path, await serviceTokenFor('monitoring'));

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  const db = testDb.database.db;
  // The stats route calls no other service: clients toward a port nothing listens on.
  const nowhere = (service: string) => createHttpClient({ service, baseUrl: 'http://127.0.0.1:1', retries: 0 });
  const credential = { authorization: async () => `Bearer ${await serviceTokenFor('job-processor')}` };
  app = createApp({
    logger: createLogger({ level: 'silent' }),
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    authenticator: testAuthenticator(createMemoryKv()),
    database: testDb.database,
    box: await createSecretBox([{ id: 'stats-test', key: crypto.getRandomValues(new Uint8Array(32)) }]),
    registry: registryClient(nowhere('service-registry'), credential),
    files: filesClient(nowhere('file-manager'), credential, 'http://127.0.0.1:1'),
    vault: vaultClient(nowhere('user-service'), credential),
    now: () => NOW,
  });

  const job = (seed: Parameters<typeof insertJob>[2]) => insertJob(db, NOW, seed);
  ids.completed1 = await job({ userId: alice, state: 'completed', ageSeconds: 10_000, service: 'michigan' });
  ids.completed2 = await job({ userId: alice, state: 'completed', ageSeconds: 9_000, service: 'michigan' });
  ids.failed = await job({ userId: alice, state: 'failed', ageSeconds: 8_000, service: 'topmed' });
  ids.cancelled = await job({ userId: alice, state: 'cancelled', ageSeconds: 7_500, service: 'michigan' });
  // A federated job that ended partial: its children do not count as jobs of their own.
  ids.partial = await job({ userId: alice, state: 'partial', ageSeconds: 7_200 });
  await job({ userId: alice, state: 'completed', ageSeconds: 7_200, service: 'michigan', parentId: ids.partial });
  await job({ userId: alice, state: 'failed', ageSeconds: 7_200, service: 'topmed', parentId: ids.partial });
  // A federated job still waiting: the parent is queued, but only its children are in the workers' queue.
  ids.federatedQueued = await job({ userId: alice, state: 'queued', ageSeconds: 7_000 });
  await job({ userId: alice, state: 'submitting', ageSeconds: 7_000, service: 'michigan', parentId: ids.federatedQueued });
  ids.running = await job({ userId: alice, state: 'running', ageSeconds: 5_000, service: 'michigan' });
  // Created an hour ago, failed, retried two minutes ago: it has waited two minutes, not an hour.
  ids.retried = await job({
    userId: alice,
    state: 'queued',
    ageSeconds: 3_600,
    service: 'topmed',
    history: [
      ['queued', 3_600],
      ['failed', 3_000],
      ['queued', 120],
    ],
  });
  ids.waiting = await job({ userId: alice, state: 'queued', ageSeconds: 600, service: 'michigan', history: [['queued', 600]] });

  ids.bobOld = await job({ userId: bob, state: 'queued', ageSeconds: 99_999, service: 'michigan' });
  ids.bobDone = await job({ userId: bob, state: 'completed', ageSeconds: 50, service: 'michigan' });
}, 60_000);

afterAll(async () => {
  await testDb.drop();
});

describe('GET /internal/stats/jobs?userId=', () => {
  it("counts one user's top-level jobs by state, with success rate, newest five and queue wait", async () => {
    const res = await asMonitoring(`/internal/stats/jobs?userId=${alice}`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(JobStatsSchema.strict().parse(body)).toEqual(body);
    expect(body.scope).toBe('user');
    expect(body.byState).toEqual({ queued: 3, submitting: 0, running: 1, exporting: 0, completed: 2, failed: 1, cancelled: 1, expired: 0, partial: 1 });
    expect(body.total).toBe(9);
    // completed ÷ (completed + failed + partial + expired) = 2 ÷ 4; the cancelled job is no outcome.
    expect(body.successRate).toBe(0.5);
    expect(body.recent).toEqual([
      { id: ids.waiting, name: 'queued job', state: 'queued', createdAt: new Date(NOW - 600_000).toISOString(), service: 'michigan' },
      { id: ids.retried, name: 'queued job', state: 'queued', createdAt: new Date(NOW - 3_600_000).toISOString(), service: 'topmed' },
      { id: ids.running, name: 'running job', state: 'running', createdAt: new Date(NOW - 5_000_000).toISOString(), service: 'michigan' },
      { id: ids.federatedQueued, name: 'queued job', state: 'queued', createdAt: new Date(NOW - 7_000_000).toISOString(), service: 'federated' },
      { id: ids.partial, name: 'partial job', state: 'partial', createdAt: new Date(NOW - 7_200_000).toISOString(), service: 'federated' },
    ]);
    // The waiting job (10 min) beats the retried one (re-queued 2 min ago) and the queued parent (not in the queue).
    expect(body.oldestQueuedAgeSeconds).toBe(600);
  });

  it("never includes another user's jobs", async () => {
    const body = await json(await asMonitoring(`/internal/stats/jobs?userId=${bob}`));
    expect(body.total).toBe(2);
    expect(body.byState.completed).toBe(1);
    expect(body.byState.queued).toBe(1);
    expect(body.recent.map((j: { id: string }) => j.id)).toEqual([ids.bobDone, ids.bobOld]);
    expect(body.successRate).toBe(1);
    expect(body.oldestQueuedAgeSeconds).toBe(99_999);
  });

  it('answers zeros and nulls for a user without jobs', async () => {
    const body = await json(await asMonitoring(`/internal/stats/jobs?userId=${crypto.randomUUID()}`));
    expect(body).toEqual({
      scope: 'user',
      byState: Object.fromEntries(JOB_STATE_VALUES.map((s) => [s, 0])),
      total: 0,
      successRate: null,
      recent: [],
      oldestQueuedAgeSeconds: null,
    });
  });

  it('rejects a malformed user id with 400', async () => {
    const res = await asMonitoring('/internal/stats/jobs?userId=not-a-uuid');
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('validation_failed');
  });
});

describe('GET /internal/stats/jobs (platform)', () => {
  it("counts every user's top-level jobs, exactly as stored", async () => {
    const res = await asMonitoring('/internal/stats/jobs');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.scope).toBe('platform');
    // An independent tally of the same rows (other suites may share this database).
    const rows = await testDb.database.db.select({ state: jobs.state }).from(jobs).where(isNull(jobs.parentId));
    const expected = Object.fromEntries(JOB_STATE_VALUES.map((s) => [s, rows.filter((r) => r.state === s).length]));
    expect(body.byState).toEqual(expected);
    expect(body.total).toBe(rows.length);
    const ended = expected.completed! + expected.failed! + expected.partial! + expected.expired!;
    expect(body.successRate).toBe(Math.round((expected.completed! / ended) * 10_000) / 10_000);
    expect(body.recent).toHaveLength(5);
    // Bob's job has waited 99,999 s; the platform's oldest wait is at least that.
    expect(body.oldestQueuedAgeSeconds).toBeGreaterThanOrEqual(99_999);
  });
});

describe('GET /internal/stats/jobs access', () => {
  it('refuses other services with 403', async () => {
    for (const service of ['notification', 'job-processor', 'file-manager']) {
      const res = await get(`/internal/stats/jobs?userId=${alice}`, await serviceTokenFor(service));
      expect(res.status).toBe(403);
    }
  });

  it('refuses user tokens with 403, admins included', async () => {
    expect((await get(`/internal/stats/jobs?userId=${alice}`, await tokenFor(alice))).status).toBe(403);
    expect((await get('/internal/stats/jobs', await tokenFor(crypto.randomUUID(), ['admin']))).status).toBe(403);
  });

  it('refuses a request without a token with 401', async () => {
    expect((await get('/internal/stats/jobs', null)).status).toBe(401);
  });

  it('is described in the OpenAPI document', async () => {
    const res = await app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = await json(res);
    expect(doc.paths['/internal/stats/jobs'].get).toBeDefined();
    expect(doc.components.schemas.JobStats).toBeDefined();
  });
});
