/**
 * One federated job from the API to stored results: submitted through `POST /jobs` to a Cloudgene
 * fake and a WES fake, run by the real worker with the real adapters, results pulled into the real
 * file-manager, and the parent derived from both children — with one job.completed event at the end.
 */
import { jobs, outbox } from '@db/schema/jobs.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import { TERMINAL_STATES } from '../../services/job-processor/src/domain.ts';
import { createJobWorker, type JobWorker } from '../../services/job-processor/src/job-worker.ts';
import { json } from '../support/json.ts';
import { createJobPlatform, type JobPlatform, type PlatformUser } from '../support/job-platform.ts';

let p: JobPlatform;
let user: PlatformUser;
let worker: JobWorker;
/** The worker's clock, moved forward so every scheduled poll is due at once. */
let clock = Date.now();
let externalServiceId: string;

beforeAll(async () => {
  p = await createJobPlatform();
  user = await p.newUser();
  const external = await p.registry.call('POST', '/services', p.registry.tokens.admin, {
    slug: 'far-away',
    name: 'A server outside this machine',
    protocol: 'ga4gh-wes',
    baseUrl: 'https://wes.example.org/ga4gh/wes/v1',
    supportedBuilds: ['hg19'],
    credentialType: 'none',
    panels: [{ externalId: 'hapmap-2', displayName: 'HapMap 2', build: 'hg19' }],
  });
  externalServiceId = (await json(external)).id;
  worker = createJobWorker({
    db: p.users.testDb.database.db,
    // As in every test and `npm start`: only loopback servers (the fakes) may be called.
    adapters: createAdapters({ policy: outboundPolicy(false), timeoutMs: 10_000, workflow: { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' } }),
    files: p.clients.files,
    vault: p.clients.vault,
    secretBox: p.box,
    logger: createLogger({ level: 'silent' }),
    owner: 'federated-flow-test',
    concurrency: 4,
    leaseMs: 30_000,
    now: () => clock,
    serviceIds: [p.services.cloudgene, p.services.wes, externalServiceId],
  });
}, 60_000);

afterAll(async () => {
  await worker.stop();
  await p.close();
});

async function runUntil(jobId: string, done: (job: any) => boolean, advance: () => void): Promise<any> {
  for (let round = 0; round < 40; round++) {
    clock += 10 * 60_000;
    await worker.runOnce();
    advance();
    const job = await json(await p.call('GET', `/jobs/${jobId}`, user.token));
    if (done(job)) return job;
  }
  throw new Error('the job did not get there in 40 rounds');
}

describe('a federated job over a Cloudgene and a WES server', () => {
  it('completes with results from both, stored once in file-manager, and one job.completed for the parent', async () => {
    const file = await p.upload(user);
    const res = await p.call('POST', '/jobs', user.token, {
      name: 'federated cohort',
      inputFileIds: [file],
      build: 'hg19',
      population: 'eur',
      targets: [
        { serviceId: 'fake-cloudgene', panel: 'hapmap-2' },
        { serviceId: 'fake-wes', panel: 'hapmap-2' },
      ],
    });
    expect(res.status).toBe(202);
    const { id } = await json(res);

    const job = await runUntil(
      id,
      (j) => TERMINAL_STATES.has(j.state),
      () => {
        for (const fakeJob of p.cloudgene.control.jobs.values()) if (fakeJob.state < 4) p.cloudgene.control.complete(fakeJob.id);
        for (const run of p.wes.control.runs.values()) if (!['COMPLETE', 'EXECUTOR_ERROR', 'SYSTEM_ERROR', 'CANCELED'].includes(run.state)) p.wes.control.finish(run.run_id);
      },
    );
    expect(job.state).toBe('completed');
    expect(job.children.map((c: any) => c.state)).toEqual(['completed', 'completed']);

    // What each server received: one submission each, Cloudgene with X-Auth-Token and the escrowed password.
    const submits = p.cloudgene.control.requestsTo('/api/v2/jobs/submit', 'POST');
    expect(submits).toHaveLength(1);
    const { password } = await json(await p.call('GET', `/jobs/${id}/password`, user.token));
    expect(submits[0]!.form?.password).toBe(password);
    expect(submits[0]!.headers.authorization).toBeUndefined();
    expect(p.wes.control.runs.size).toBe(1);

    const results = (await json(await p.call('GET', `/jobs/${id}/results`, user.token))).items;
    const services = new Set(results.map((r: any) => r.service));
    expect(services).toEqual(new Set(['fake-cloudgene', 'fake-wes']));
    expect(results.every((r: any) => r.state === 'stored' && r.fileId)).toBe(true);
    const chr20 = results.find((r: any) => r.service === 'fake-cloudgene' && r.name === 'chr_20.zip');
    const stored = await p.fileManager.request(`/files/${chr20.fileId}/content`, { headers: { authorization: `Bearer ${user.token}` } });
    expect(stored.status).toBe(200);
    expect(new Uint8Array(await stored.arrayBuffer()).slice(0, 2)).toEqual(new Uint8Array([0x50, 0x4b])); // a zip

    // Another worker round changes nothing: no second copy, no new events.
    const events = async () => (await p.users.testDb.database.db.select().from(outbox)).filter((e) => [id, ...job.children.map((c: any) => c.id)].includes((e.payload as any).data.jobId));
    const before = (await events()).length;
    clock += 60 * 60_000;
    await worker.runOnce();
    expect((await events()).length).toBe(before);
    const completed = (await events()).filter((e) => e.type === 'job.completed');
    expect(completed.map((e) => (e.payload as any).data.jobId)).toEqual([id]);
    const [parent] = await p.users.testDb.database.db.select().from(jobs).where(eq(jobs.id, id));
    expect(parent!.finishedAt).not.toBeNull();
  });

  it('surfaces a QC failure with the server’s messages and a hint, and the parent ends partial', async () => {
    const file = await p.upload(user);
    const { id } = await json(
      await p.call('POST', '/jobs', user.token, {
        name: 'qc trouble',
        inputFileIds: [file],
        build: 'hg19',
        targets: [
          { serviceId: 'fake-cloudgene', panel: 'hapmap-2' },
          { serviceId: 'fake-wes', panel: 'hapmap-2' },
        ],
      }),
    );
    const job = await runUntil(
      id,
      (j) => TERMINAL_STATES.has(j.state),
      () => {
        for (const fakeJob of p.cloudgene.control.jobs.values()) {
          if (fakeJob.state < 1 || fakeJob.state > 3) continue;
          p.cloudgene.control.failQc(fakeJob.id);
          p.cloudgene.control.advance(fakeJob.id);
        }
        for (const run of p.wes.control.runs.values()) if (!['COMPLETE', 'EXECUTOR_ERROR', 'SYSTEM_ERROR', 'CANCELED'].includes(run.state)) p.wes.control.finish(run.run_id);
      },
    );
    expect(job.state).toBe('partial');
    const cloudgeneChild = job.children.find((c: any) => c.service.slug === 'fake-cloudgene');
    expect(cloudgeneChild.state).toBe('failed');
    expect(cloudgeneChild.error.code).toBe('qc_failed');
    expect(cloudgeneChild.error.message).toContain('strand flips');
    expect(cloudgeneChild.error.hint).toBeTruthy();
    const logs = (await json(await p.call('GET', `/jobs/${id}/logs`, user.token))).items;
    expect(logs.some((l: any) => l.jobId === cloudgeneChild.id && l.level === 'error')).toBe(true);
  });

  it('cancels a running job on its server with a GET', async () => {
    const file = await p.upload(user);
    const { id } = await json(await p.call('POST', '/jobs', user.token, { name: 'to cancel', inputFileIds: [file], build: 'hg19', targets: [{ serviceId: 'fake-cloudgene', panel: 'hapmap-2' }] }));
    await runUntil(id, (j) => j.externalId !== null, () => {});
    expect((await p.call('POST', `/jobs/${id}/cancel`, user.token)).status).toBe(202);
    const job = await runUntil(id, (j) => TERMINAL_STATES.has(j.state), () => {});
    expect(job.state).toBe('cancelled');
    const cancels = p.cloudgene.control.requestsTo(`/api/v2/jobs/${job.externalId}/cancel`);
    expect(cancels.map((r) => r.method)).toEqual(['GET']);
    expect(p.cloudgene.control.jobs.get(job.externalId)!.state).toBe(6);
  });

  it('fails a job for a server outside this machine while external calls are off, without calling it', async () => {
    const file = await p.upload(user);
    const { id } = await json(await p.call('POST', '/jobs', user.token, { name: 'far', inputFileIds: [file], build: 'hg19', targets: [{ serviceId: 'far-away', panel: 'hapmap-2' }] }));
    const job = await runUntil(id, (j) => TERMINAL_STATES.has(j.state), () => {});
    expect(job.state).toBe('failed');
    expect(job.error.code).toBe('external_calls_disabled');
    expect(job.error.message).toContain('wes.example.org');
  });
});
