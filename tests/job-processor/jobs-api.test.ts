/**
 * job-processor's jobs API against the real registry, file-manager and user-service vault (each over
 * HTTP): what a request is checked against, what is stored, idempotency, federated parents,
 * cancellation before submission, retry rules and the escrowed password.
 */
import { jobHistory, jobs, outbox } from '@db/schema/jobs.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq, inArray } from 'drizzle-orm';
import { json } from '../support/json.ts';
import { createJobPlatform, type JobPlatform, type PlatformUser } from '../support/job-platform.ts';
import { tokenFor } from '../support/test-identity.ts';
import { bgzip, makeVcf } from '../support/vcf.ts';

let p: JobPlatform;
let alice: PlatformUser;
let aliceFile: string;

const body = (overrides: Record<string, unknown> = {}) => ({
  name: 'cohort A',
  inputFileIds: [aliceFile],
  build: 'hg19',
  population: 'eur',
  targets: [{ serviceId: 'fake-cloudgene', panel: 'hapmap-2' }],
  ...overrides,
});

const db = () => p.users.testDb.database.db;

beforeAll(async () => {
  p = await createJobPlatform();
  alice = await p.newUser();
  aliceFile = await p.upload(alice);
}, 60_000);

afterAll(async () => {
  await p.close();
});

describe('POST /jobs', () => {
  it('accepts a valid job with 202 and stores it queued with history, the catalogue snapshot and a job.created event', async () => {
    const res = await p.call('POST', '/jobs', alice.token, body());
    expect(res.status).toBe(202);
    const job = await json(res);
    expect(job).toMatchObject({
      name: 'cohort A',
      state: 'queued',
      parentId: null,
      service: { slug: 'fake-cloudgene', protocol: 'cloudgene' },
      panel: 'hapmap-2',
      request: { build: 'hg19', phasing: 'eagle', population: 'eur', mode: 'imputation', r2Filter: 0, inputFileIds: [aliceFile] },
      children: [],
      error: null,
    });
    expect(job.history).toEqual([expect.objectContaining({ state: 'queued', message: 'accepted' })]);
    const [row] = await db().select().from(jobs).where(eq(jobs.id, job.id));
    expect(row!.target).toMatchObject({ service: { slug: 'fake-cloudgene', baseUrl: p.cloudgene.url, appId: 'imputationserver2' }, panel: { externalKey: 'apps@hapmap-2@2.0.0' } });
    expect(row!.passwordSealed).not.toBeNull();
    expect(row!.nextPollAt).not.toBeNull();
    const events = await db().select().from(outbox);
    expect(events.filter((e) => (e.payload as any).data.jobId === job.id).map((e) => e.type)).toEqual(['job.created']);
  });

  it('creates a federated parent with one child per target', async () => {
    const res = await p.call('POST', '/jobs', alice.token, body({ targets: [{ serviceId: 'fake-cloudgene', panel: 'hapmap-2' }, { serviceId: p.services.wes, panel: 'hapmap-2' }] }));
    expect(res.status).toBe(202);
    const job = await json(res);
    expect(job.service).toBeNull();
    expect(job.children.map((c: any) => c.service.slug).sort()).toEqual(['fake-cloudgene', 'fake-wes']);
    expect(job.children.every((c: any) => c.parentId === job.id && c.state === 'queued')).toBe(true);
    const list = await json(await p.call('GET', '/jobs?limit=1', alice.token));
    expect(list.items[0].id).toBe(job.id);
    expect(list.items[0].children.map((c: any) => c.service).sort()).toEqual(['fake-cloudgene', 'fake-wes']);
  });

  it('lists every reason a request cannot run in one 422, and stores nothing', async () => {
    const bob = await p.newUser({ credentials: false });
    const bobsFile = await p.upload(bob);
    const broken = await p.fileManager.request('/files?name=broken.vcf.gz&build=hg19', {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/octet-stream' },
      body: bgzip(makeVcf({ samples: 5, chromosome: 'chr20' })),
    });
    const brokenId = (await json(broken)).id;
    const before = (await db().select().from(jobs)).length;
    const res = await p.call(
      'POST',
      '/jobs',
      alice.token,
      body({
        inputFileIds: [bobsFile, brokenId, crypto.randomUUID()],
        population: 'sas',
        targets: [
          { serviceId: 'fake-cloudgene', panel: 'hapmap-2' },
          { serviceId: 'fake-cloudgene', panel: 'topmed-r3' },
          { serviceId: 'no-such-service', panel: 'hapmap-2' },
        ],
      }),
    );
    expect(res.status).toBe(422);
    const problem = await json(res);
    const codes = problem.errors.map((e: any) => `${e.path}:${e.code}`);
    expect(codes).toEqual(
      expect.arrayContaining([
        'inputFileIds.0:file_not_found',
        'inputFileIds.1:file_failed_validation',
        'inputFileIds.2:file_not_found',
        'targets.0:population_not_offered',
        'targets.1:panel_not_offered',
        'targets.2:service_not_found',
      ]),
    );
    expect((await db().select().from(jobs)).length).toBe(before);
  });

  it('refuses a target without a stored credential, and one outside the sample limits', async () => {
    const carol = await p.newUser({ credentials: false });
    const many = await p.upload(carol, { samples: 120 });
    const res = await p.call('POST', '/jobs', carol.token, body({ inputFileIds: [many] }));
    expect(res.status).toBe(422);
    const codes = (await json(res)).errors.map((e: any) => e.code);
    expect(codes).toEqual(expect.arrayContaining(['credential_missing', 'too_many_samples']));
  });

  it.each([
    ['no targets', { targets: [] }],
    ['an unknown phasing', { phasing: 'shapeit' }],
    ['an r2Filter the servers do not offer', { r2Filter: 0.5 }],
    ['"auto" without a panel', { targets: 'auto' }],
    ['the same target twice', { targets: [{ serviceId: 'a', panel: 'b' }, { serviceId: 'a', panel: 'b' }] }],
    ['a password with a space', { password: 'has a space' }],
    ['an unknown field', { priority: 'high' }],
  ])('rejects %s with 422 before looking anything up', async (_label, change) => {
    const res = await p.call('POST', '/jobs', alice.token, body(change));
    expect(res.status).toBe(422);
  });

  it('answers a retried request with the same Idempotency-Key with the job it created, once', async () => {
    const key = `retry-${crypto.randomUUID()}`;
    const first = await json(await p.call('POST', '/jobs', alice.token, body({ name: 'idempotent' }), { 'idempotency-key': key }));
    const again = await p.call('POST', '/jobs', alice.token, body({ name: 'idempotent' }), { 'idempotency-key': key });
    expect(again.status).toBe(202);
    expect((await json(again)).id).toBe(first.id);
    expect((await db().select().from(jobs).where(eq(jobs.name, 'idempotent'))).length).toBe(1);
    const different = await p.call('POST', '/jobs', alice.token, body({ name: 'something else' }), { 'idempotency-key': key });
    expect(different.status).toBe(422);
    expect((await json(different)).code).toBe('idempotency_key_reused');
  });

  it('picks the best-ranked service the caller can use for targets "auto"', async () => {
    const res = await p.call('POST', '/jobs', alice.token, body({ targets: 'auto', panel: 'hapmap-2' }));
    expect(res.status).toBe(202);
    expect(['fake-cloudgene', 'fake-wes']).toContain((await json(res)).service.slug);
  });
});

describe('reading jobs', () => {
  it("hides another user's job as 404, and lets an admin read it but not its password", async () => {
    const job = await json(await p.call('POST', '/jobs', alice.token, body({ password: 'Secret-Zip-42' })));
    const mallory = await tokenFor(crypto.randomUUID());
    expect((await p.call('GET', `/jobs/${job.id}`, mallory)).status).toBe(404);
    expect((await p.call('GET', `/jobs/${job.id}/password`, mallory)).status).toBe(404);
    const admin = await tokenFor(crypto.randomUUID(), ['admin']);
    expect((await p.call('GET', `/jobs/${job.id}`, admin)).status).toBe(200);
    expect((await p.call('GET', `/jobs/${job.id}/password`, admin)).status).toBe(404);
    const own = await p.call('GET', `/jobs/${job.id}/password`, alice.token);
    expect(await json(own)).toEqual({ password: 'Secret-Zip-42' });
    const [row] = await db().select().from(jobs).where(eq(jobs.id, job.id));
    expect(row!.passwordSealed).not.toContain('Secret-Zip-42');
  });

  it('generates a strong password when none is given', async () => {
    const job = await json(await p.call('POST', '/jobs', alice.token, body()));
    const { password } = await json(await p.call('GET', `/jobs/${job.id}/password`, alice.token));
    expect(password).toMatch(/^[A-Za-z0-9@%+=_.-]{16}$/);
    expect(password).toMatch(/[A-Z]/);
    expect(password).toMatch(/[0-9]/);
  });

  it('serves history, logs and results for a job and its children', async () => {
    const job = await json(await p.call('POST', '/jobs', alice.token, body()));
    const events = await json(await p.call('GET', `/jobs/${job.id}/events`, alice.token));
    expect(events.items).toEqual([expect.objectContaining({ jobId: job.id, state: 'queued' })]);
    expect(await json(await p.call('GET', `/jobs/${job.id}/logs`, alice.token))).toEqual({ items: [] });
    expect(await json(await p.call('GET', `/jobs/${job.id}/results`, alice.token))).toEqual({ items: [] });
  });

  it('pages and filters the list', async () => {
    const page = await json(await p.call('GET', '/jobs?limit=2', alice.token));
    expect(page.items).toHaveLength(2);
    const next = await json(await p.call('GET', `/jobs?limit=2&cursor=${page.nextCursor}`, alice.token));
    expect(next.items[0].id).not.toBe(page.items[0].id);
    expect(next.items[0].createdAt <= page.items[1].createdAt).toBe(true);
    const wesOnly = await json(await p.call('GET', `/jobs?service=${p.services.wes}&limit=100`, alice.token));
    expect(wesOnly.items.length).toBeGreaterThan(0);
    for (const item of wesOnly.items) expect(item.service?.slug === 'fake-wes' || item.children.some((c: any) => c.service === 'fake-wes')).toBe(true);
    expect((await p.call('GET', '/jobs?cursor=not-ours', alice.token)).status).toBe(400);
    // Shaped like ours but not a real time or id: refused as a bad cursor, never passed to the database.
    for (const forged of ['2031-99-99T99:99:99.000Z|0190c3d2-0000-7000-8000-000000000000', `2031-01-01T00:00:00.000Z|${'-'.repeat(36)}`]) {
      const res = await p.call('GET', `/jobs?cursor=${Buffer.from(forged).toString('base64url')}`, alice.token);
      expect(res.status).toBe(400);
    }
  });
});

describe('cancel and retry', () => {
  it('cancels a job that was never submitted at once, with a job.cancelled event; a second cancel is a 409', async () => {
    const job = await json(await p.call('POST', '/jobs', alice.token, body()));
    const res = await p.call('POST', `/jobs/${job.id}/cancel`, alice.token);
    expect(res.status).toBe(202);
    expect((await json(res)).state).toBe('cancelled');
    const types = (await db().select().from(outbox)).filter((e) => (e.payload as any).data.jobId === job.id).map((e) => e.type);
    expect(types).toEqual(['job.created', 'job.status_changed', 'job.cancelled']);
    expect((await p.call('POST', `/jobs/${job.id}/cancel`, alice.token)).status).toBe(409);
    expect(p.cloudgene.control.requestsTo('/api/v2/jobs').length).toBe(0);
  });

  it('cancelling a parent cancels its children and derives the parent as cancelled', async () => {
    const job = await json(await p.call('POST', '/jobs', alice.token, body({ targets: [{ serviceId: 'fake-cloudgene', panel: 'hapmap-2' }, { serviceId: 'fake-wes', panel: 'hapmap-2' }] })));
    const res = await json(await p.call('POST', `/jobs/${job.id}/cancel`, alice.token));
    expect(res.state).toBe('cancelled');
    expect(res.children.map((c: any) => c.state)).toEqual(['cancelled', 'cancelled']);
  });

  it('retries only failed jobs, as a new attempt', async () => {
    const job = await json(await p.call('POST', '/jobs', alice.token, body()));
    expect((await p.call('POST', `/jobs/${job.id}/retry`, alice.token)).status).toBe(409);
    await db().update(jobs).set({ state: 'failed', errorCode: 'pipeline_failed', externalId: 'job-1', finishedAt: new Date() }).where(eq(jobs.id, job.id));
    const res = await p.call('POST', `/jobs/${job.id}/retry`, alice.token);
    expect(res.status).toBe(202);
    expect(await json(res)).toMatchObject({ state: 'queued', attempt: 2, externalId: null, error: null, finishedAt: null });
    const history = await db().select().from(jobHistory).where(inArray(jobHistory.jobId, [job.id]));
    expect(history.map((h) => h.message)).toContain('retry: attempt 2');
  });
});
