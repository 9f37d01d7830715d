/**
 * The job worker end to end on the real database: the real Cloudgene and WES adapters against the
 * faithful fakes, a real file-manager served over HTTP (inputs streamed out, results stored in), and a
 * clock the test moves so every scheduled poll is due without waiting. Job rows are inserted directly
 * with a `target` snapshot pointing at the fakes; the vault is a small object handing out the fake's token.
 */
import { jobResults, jobs, outbox } from '@db/schema/jobs.ts';
import { fileHolds, storedFiles } from '@db/schema/files.ts';
import type { EventEnvelope } from '@shared/schemas/events.ts';
import { createLogger } from '@shared/log.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { asc, eq, inArray, sql } from 'drizzle-orm';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import { createCircuitBreaker } from '@shared/circuit-breaker.ts';
import { TERMINAL_STATES, type JobRow, type JobTarget } from '../../services/job-processor/src/domain.ts';
import { externalNameFor, type JobWorkerDeps } from '../../services/job-processor/src/job-worker.ts';
import { createPollSchedule } from '../../services/job-processor/src/poll-schedule.ts';
import { makeFakeJwt, type CloudgeneFake, type CloudgeneFakeOptions } from '../fakes/cloudgene.ts';
import { FAKE_VCF, startWesFake, type WesFake, type WesFakeOptions } from '../fakes/wes.ts';
import { createJobWorkerHarness, type JobWorkerHarness, type WorkerTestUser } from '../support/job-worker-harness.ts';

const logger = createLogger({ level: 'silent' });
const WES_WORKFLOW = { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' };
const adapters = createAdapters({ timeoutMs: 10_000, workflow: WES_WORKFLOW });

let h: JobWorkerHarness;
/** The worker's clock; tests move it so scheduled work becomes due. */
let clock = Date.now();

beforeAll(async () => {
  h = await createJobWorkerHarness({ name: 'worker-test', adapters, logger });
}, 60_000);

afterAll(() => h.close(), 30_000);

// ---- helpers ----------------------------------------------------------------------------------

const cloudgene = (options: CloudgeneFakeOptions = {}) => h.cloudgene(options);
const cloudgeneTarget = (fake: CloudgeneFake, overrides: Partial<JobTarget['service']> = {}) => h.cloudgeneTarget(fake, overrides);
const userFor = (target: JobTarget, token: string | null) => h.userFor(target, token);

async function wes(options: WesFakeOptions = {}): Promise<WesFake> {
  return h.track(await startWesFake({ version: '1.1.0', ...options }));
}

function wesTarget(fake: WesFake): JobTarget {
  const id = crypto.randomUUID();
  return {
    service: { id, slug: `wes-${id.slice(0, 8)}`, name: 'Fake WES', protocol: 'ga4gh-wes', baseUrl: fake.url, appId: null, credentialType: 'none', limits: {} },
    panel: { id: crypto.randomUUID(), externalId: 'hapmap-2', externalKey: null, displayName: 'HapMap 2', build: 'hg19' },
  };
}

/** A job of the user on `target`, created at the test's clock unless `overrides` say otherwise. */
function insertJob(target: JobTarget, user: WorkerTestUser, overrides: Partial<typeof jobs.$inferInsert> = {}): Promise<JobRow> {
  return h.insertJob(target, user, { name: 'worker test', createdAt: new Date(clock), updatedAt: new Date(clock), ...overrides });
}

function worker(targets: JobTarget[], extra: Partial<JobWorkerDeps> = {}) {
  return h.worker({ owner: `test-${crypto.randomUUID().slice(0, 8)}`, now: () => clock, serviceIds: targets.map((t) => t.service.id), ...extra });
}

const jobRow = (id: string) => h.jobRow(id);
const historyOf = (id: string) => h.historyOf(id);
const resultsOf = (id: string) => h.resultsOf(id);
const jobRows = (ids: string[]) => h.db.select().from(jobs).where(inArray(jobs.id, ids)).orderBy(asc(jobs.createdAt));
const eventsOf = (id: string) =>
  h.db
    .select()
    .from(outbox)
    .where(sql`${outbox.payload}->'data'->>'jobId' = ${id}`)
    .orderBy(asc(outbox.id));

/** Runs rounds, moving the clock `stepMs` after each, until every job has ended. */
async function drive(w: ReturnType<typeof worker>, ids: string[], options: { rounds?: number; stepMs?: number } = {}): Promise<JobRow[]> {
  for (let round = 0; round < (options.rounds ?? 40); round++) {
    await w.runOnce();
    const rows = await jobRows(ids);
    if (rows.every((r) => TERMINAL_STATES.has(r.state))) return rows;
    clock += options.stepMs ?? 600_000;
  }
  throw new Error(`jobs did not end: ${JSON.stringify((await jobRows(ids)).map((r) => [r.state, r.errorMessage]))}`);
}

/** Moves the clock past a job's next poll and runs one round. */
async function nextRound(w: ReturnType<typeof worker>, id: string): Promise<JobRow> {
  const row = await jobRow(id);
  if (row.nextPollAt) clock = Math.max(clock, row.nextPollAt.getTime());
  await w.runOnce();
  return jobRow(id);
}

/** A Cloudgene fake started with `options`, a target on it and one job of a user holding the fake's token. */
async function cloudgeneJob(options: CloudgeneFakeOptions = {}) {
  const { fake, token } = await cloudgene(options);
  const target = cloudgeneTarget(fake);
  const user = await userFor(target, token);
  return { fake, token, target, user, job: await insertJob(target, user) };
}

/** A WES fake started with `options`, a target on it and one job (with `overrides`) of a user without a credential. */
async function wesJob(options: WesFakeOptions = {}, overrides: Partial<typeof jobs.$inferInsert> = {}) {
  const fake = await wes(options);
  const target = wesTarget(fake);
  const user = await userFor(target, null);
  return { fake, target, user, job: await insertJob(target, user, overrides) };
}

/** A worker for `target` after its first round, and the job's row as that round left it (submitted). */
async function submitOnce(target: JobTarget, job: JobRow): Promise<{ w: ReturnType<typeof worker>; submitted: JobRow }> {
  const w = worker([target]);
  await w.runOnce();
  return { w, submitted: await jobRow(job.id) };
}

/** What POST /jobs/{id}/cancel records for a job the server has: a cancel request, due now. */
async function requestCancel(id: string): Promise<void> {
  await h.db
    .update(jobs)
    .set({ cancelRequestedAt: new Date(clock), nextPollAt: new Date(clock), updatedAt: new Date(clock) })
    .where(eq(jobs.id, id));
}

const submitsTo = (fake: CloudgeneFake) => fake.control.requestsTo('/api/v2/jobs/submit', 'POST');
const fakeJobsNamed = (fake: CloudgeneFake, name: string) => [...fake.control.jobs.values()].filter((j) => j.name === name);

// ---- Cloudgene ------------------------------------------------------------------------------

describe('job worker on a Cloudgene server', () => {
  it('submits five jobs of one user two at a time without ever meeting the 400, and completes them all', async () => {
    const { fake, token } = await cloudgene({ maxActiveJobs: 2 });
    const target = cloudgeneTarget(fake);
    const user = await userFor(target, token);
    const created = [];
    for (let i = 0; i < 5; i++) created.push(await insertJob(target, user));
    const rows = await drive(worker([target]), created.map((j) => j.id));

    expect(rows.map((r) => r.state)).toEqual(['completed', 'completed', 'completed', 'completed', 'completed']);
    const submits = submitsTo(fake);
    expect(submits).toHaveLength(5);
    expect(submits.every((r) => r.status === 200)).toBe(true);
    expect(fake.control.jobs.size).toBe(5);
    // Each submission sent the input file, the escrowed password and the job's external name.
    for (const [i, request] of submits.entries()) {
      expect(request.files).toEqual([{ field: 'files', name: user.input.name, size: user.input.sizeBytes, type: 'application/gzip' }]);
      expect(request.form?.refpanel).toBe('apps@hapmap-2@2.0.0');
      expect(request.headers['x-auth-token']).toBe(token);
      void i;
    }
    expect(new Set(submits.map((r) => r.form?.['job-name'])).size).toBe(5);
    expect([...fake.control.jobs.values()].every((j) => j.password === 'Pass-word_123')).toBe(true);
    for (const row of rows) {
      const results = await resultsOf(row.id);
      expect(results.map((r) => r.name)).toEqual(['chr_20.zip', 'qc_report.txt', 'quality-control.html', 'statistics/snps-excluded.txt']);
      expect(results.every((r) => r.state === 'stored' && r.fileId !== null)).toBe(true);
      // Waiting for a slot is quiet: no history line or event for the deferrals.
      expect((await historyOf(row.id)).map((h) => h.state)).toEqual(['submitting', 'running', 'exporting', 'completed']);
    }
  }, 60_000);

  it('adopts a submission that reached the server before its worker died instead of submitting again', async () => {
    const { fake, token } = await cloudgene({ progression: 'manual' });
    const target = cloudgeneTarget(fake);
    const user = await userFor(target, token);
    const id = Bun.randomUUIDv7();
    const externalName = externalNameFor({ id, attempt: 1 });
    // The dead worker's submission, made the way the worker makes it.
    const { externalId } = await adapters.cloudgene.submit({
      target,
      credential: { type: 'cloudgene-token', token },
      externalName,
      inputs: [{ ...user.input, open: () => h.files.content(user.input.id), link: () => h.files.link(user.input.id, 60) }],
      build: 'hg19',
      phasing: 'eagle',
      population: 'eur',
      mode: 'imputation',
      r2Filter: 0,
      password: 'Pass-word_123',
    });
    const job = await insertJob(target, user, {
      id,
      state: 'submitting',
      externalName,
      submitStartedAt: new Date(clock - 120_000),
      leaseOwner: 'dead-worker',
      leaseExpiresAt: new Date(clock - 60_000),
    });

    expect(await worker([target]).runOnce()).toBe(1);
    const row = await jobRow(job.id);
    expect(row.state).toBe('running');
    expect(row.externalId).toBe(externalId);
    expect(row.leaseOwner).toBeNull();
    expect(submitsTo(fake)).toHaveLength(1);
    expect(fakeJobsNamed(fake, externalName)).toHaveLength(1);
    expect((await historyOf(job.id)).at(-1)?.message).toContain('adopted');
  });

  it('backs off after a 500 on submit and submits once the server answers again', async () => {
    const { fake, target, job } = await cloudgeneJob({ progression: 'manual' });
    fake.control.addFault({ kind: 'status500', method: 'POST', path: '/api/v2/jobs/submit', times: 1 });
    const w = worker([target]);

    await w.runOnce();
    let row = await jobRow(job.id);
    expect(row.state).toBe('queued');
    expect(row.attempts).toBe(1);
    expect(row.nextPollAt!.getTime()).toBe(clock + 5_000);
    expect(row.errorCode).toBeNull();
    expect((await historyOf(job.id)).at(-1)?.message).toContain('HTTP 500');
    // Not due yet: nothing is claimed.
    expect(await w.runOnce()).toBe(0);

    row = await nextRound(w, job.id);
    expect(row.state).toBe('running');
    expect(row.attempts).toBe(0);
    // The retry looked for the first attempt on the server before submitting again.
    expect(fake.control.requestsTo('/api/v2/jobs', 'GET').some((r) => r.query.page === '1')).toBe(true);
    expect(submitsTo(fake).map((r) => r.status)).toEqual([500, 200]);
    expect(fakeJobsNamed(fake, row.externalName!)).toHaveLength(1);
  });

  it("fails a job that did not pass the server's QC with the server's own messages", async () => {
    const { target, job } = await cloudgeneJob({ qcFailure: true });
    const [row] = await drive(worker([target]), [job.id]);
    expect(row!.state).toBe('failed');
    expect(row!.errorCode).toBe('qc_failed');
    expect(row!.errorMessage).toContain('More than 100 obvious strand flips have been detected');
    expect(row!.errorHint).toContain('quality control');
    const events = await eventsOf(job.id);
    expect(events.map((e) => e.type)).toContain('job.failed');
  });

  it('fails a job whose server refuses it with the server message, and one without a credential before calling the server', async () => {
    const { fake, token } = await cloudgene();
    const wrongApp = cloudgeneTarget(fake, { appId: 'no-such-app' });
    const rejected = await insertJob(wrongApp, await userFor(wrongApp, token));
    const target = cloudgeneTarget(fake);
    const missing = await insertJob(target, await userFor(target, null));
    const revoked = await insertJob(target, await userFor(target, makeFakeJwt('someone-else')));
    const w = worker([wrongApp, target]);
    await w.runOnce();

    const [a, b, c] = await Promise.all([jobRow(rejected.id), jobRow(missing.id), jobRow(revoked.id)]);
    expect(a.state).toBe('failed');
    expect(a.errorCode).toBe('rejected_by_server');
    expect(a.errorMessage).toContain("Application 'no-such-app' not found");
    expect(b.state).toBe('failed');
    expect(b.errorCode).toBe('credential_missing');
    expect(b.errorHint).toContain('Settings');
    expect(c.state).toBe('failed');
    expect(c.errorCode).toBe('credential_rejected');
    expect(c.errorHint).toBe('Renew your token for Fake Michigan in Settings, then retry the job.');
    expect(fake.control.jobs.size).toBe(0);
    expect(submitsTo(fake).map((r) => r.status).sort()).toEqual([401, 404]);
  });

  it('cancels a submitted job on the server with GET cancel', async () => {
    const { fake, target, job } = await cloudgeneJob({ progression: 'manual' });
    const { w, submitted: running } = await submitOnce(target, job);
    expect(running.state).toBe('running');
    fake.control.advance(running.externalId!);

    await requestCancel(job.id);
    expect(await w.runOnce()).toBe(1);
    const row = await jobRow(job.id);
    expect(row.state).toBe('cancelled');
    expect(row.externalState).toBe('6');
    expect(fake.control.requestsTo(`/api/v2/jobs/${running.externalId}/cancel`, 'GET')).toHaveLength(1);
    expect(fake.control.requestsTo(`/api/v2/jobs/${running.externalId}`, 'DELETE')).toHaveLength(0);
    expect(fake.control.jobs.get(running.externalId!)!.state).toBe(6);
  });

  it('stores each result file once even when retrieval runs again after a crash', async () => {
    const { fake, target, job } = await cloudgeneJob();
    const [done] = await drive(worker([target]), [job.id]);
    expect(done!.state).toBe('completed');
    const first = await resultsOf(job.id);
    const fakeJob = fake.control.jobs.get(done!.externalId!)!;
    expect(fakeJob.files.map((f) => f.count)).toEqual([9, 9, 9, 9]);

    // A worker that died after file-manager stored the files but before the rows recorded it.
    await h.db.update(jobResults).set({ state: 'pending', fileId: null }).where(eq(jobResults.jobId, job.id));
    await h.db.update(jobs).set({ state: 'exporting', finishedAt: null, nextPollAt: new Date(clock) }).where(eq(jobs.id, job.id));
    const [again] = await drive(worker([target]), [job.id]);

    expect(again!.state).toBe('completed');
    const second = await resultsOf(job.id);
    expect(second.map((r) => [r.name, r.state, r.fileId])).toEqual(first.map((r) => [r.name, 'stored', r.fileId]));
    const stored = await h.db.select().from(storedFiles).where(eq(storedFiles.jobId, job.id));
    expect(stored.map((f) => f.originalName).sort()).toEqual(['chr_20.zip', 'qc_report.txt', 'quality-control.html', 'snps-excluded.txt'].sort());
    // No download was spent on the second run.
    expect(fakeJob.files.map((f) => f.count)).toEqual([9, 9, 9, 9]);
    // The stored zip is the server's file, byte for byte.
    const zip = fakeJob.files.find((f) => f.name === 'chr_20.zip')!;
    const zipRow = second.find((r) => r.name === 'chr_20.zip')!;
    expect(new Uint8Array(await new Response(await h.files.content(zipRow.fileId!)).arrayBuffer())).toEqual(new Uint8Array(zip.bytes));
  });

  it('completes with what it could store when the server refuses one download, naming the missing file', async () => {
    const { fake, target, job } = await cloudgeneJob({ progression: 'manual' });
    const { w, submitted } = await submitOnce(target, job);
    const fakeJob = fake.control.complete(submitted.externalId!);
    // Someone spent the last download of the zip on the server's web page.
    fakeJob.files.find((f) => f.name === 'chr_20.zip')!.count = 0;

    const row = await nextRound(w, job.id);
    expect(row.state).toBe('completed');
    expect(row.errorCode).toBe('results_incomplete');
    expect(row.errorMessage).toContain('chr_20.zip');
    expect(row.errorMessage).toContain('number of max downloads exceeded.');
    const results = await resultsOf(job.id);
    expect(results.map((r) => [r.name, r.state])).toEqual([
      ['chr_20.zip', 'failed'],
      ['qc_report.txt', 'stored'],
      ['quality-control.html', 'stored'],
      ['statistics/snps-excluded.txt', 'stored'],
    ]);
  });

  it('expires a job whose results the server deleted before the platform retrieved them', async () => {
    const { fake, target, job } = await cloudgeneJob({ progression: 'manual' });
    const { w, submitted } = await submitOnce(target, job);
    fake.control.complete(submitted.externalId!);
    fake.control.advanceClockDays(4);
    fake.control.advanceClockDays(3);
    expect(fake.control.jobs.get(submitted.externalId!)!.state).toBe(7);

    const row = await nextRound(w, job.id);
    expect(row.state).toBe('expired');
    expect(row.errorCode).toBe('results_expired');
    expect(await resultsOf(job.id)).toHaveLength(0);
    expect((await eventsOf(job.id)).map((e) => e.type)).toContain('job.failed');
  });

  it('writes an event only for real transitions: ten polls while running add none', async () => {
    const { fake, target, job } = await cloudgeneJob({ progression: 'manual' });
    const { w, submitted } = await submitOnce(target, job);
    fake.control.advance(submitted.externalId!);
    for (let i = 0; i < 10; i++) expect((await nextRound(w, job.id)).state).toBe('running');

    const row = await jobRow(job.id);
    expect(row.pollCount).toBe(10);
    expect(row.externalState).toBe('2');
    // The poll interval backs off from 5 s toward its cap.
    expect(row.nextPollAt!.getTime() - clock).toBe(300_000);
    const changes = (await eventsOf(job.id)).filter((e) => e.type === 'job.status_changed').map((e) => (e.payload as EventEnvelope).data.state);
    expect(changes).toEqual(['submitting', 'running']);
    expect((await historyOf(job.id)).map((h) => h.state)).toEqual(['submitting', 'running']);
  });

  it('defers jobs while the server is down and its circuit open, failing none, and submits once it recovers', async () => {
    const { fake, token } = await cloudgene({ status500: true });
    const target = cloudgeneTarget(fake);
    const user = await userFor(target, token);
    const first = await insertJob(target, user);
    const breaker = createCircuitBreaker({ threshold: 3, coolDownMs: 600_000, now: () => clock });
    const w = worker([target], { breaker });
    for (let i = 0; i < 3; i++) await nextRound(w, first.id);
    expect(breaker.state(target.service.slug)).toBe('open');
    expect(fake.control.requests).toHaveLength(3);

    // A job due while the circuit is open is put off to the end of the cool-down without a call.
    const second = await insertJob(target, user);
    expect(await w.runOnce()).toBe(1);
    const deferred = await jobRow(second.id);
    expect(deferred.state).toBe('queued');
    expect(deferred.attempts).toBe(0);
    expect(deferred.nextPollAt!.getTime()).toBeGreaterThan(clock + 500_000);
    expect(await historyOf(second.id)).toHaveLength(0);
    expect(fake.control.requests).toHaveLength(3);
    const failing = await jobRow(first.id);
    expect(failing.state).toBe('queued');
    expect(failing.errorCode).toBeNull();
    expect(failing.attempts).toBe(3);

    fake.control.clearFaults();
    const rows = await drive(w, [first.id, second.id], { stepMs: 60_000 });
    expect(rows.map((r) => r.state)).toEqual(['completed', 'completed']);
    expect(breaker.state(target.service.slug)).toBe('closed');
    expect(fake.control.jobs.size).toBe(2);
  });
});

// ---- WES ----------------------------------------------------------------------------------------

describe('job worker on a GA4GH WES server', () => {
  it('runs a job to completion, stores its outputs in file-manager and releases the input hold', async () => {
    const { fake, target, user, job } = await wesJob();
    await h.files.hold(user.input.id, job.id);
    const [row] = await drive(worker([target]), [job.id]);

    expect(row!.state).toBe('completed');
    expect(row!.progress).toBe(100);
    const run = fake.control.runs.get(row!.externalId!)!;
    expect(run.request.tags).toEqual({ fip_job: externalNameFor(job) });
    expect(run.request.workflow_url).toBe(WES_WORKFLOW.url);
    const inputs = run.request.workflow_params.inputs as string[];
    expect(inputs).toHaveLength(1);
    expect(inputs[0]).toContain(user.input.id);
    const results = await resultsOf(job.id);
    expect(results.map((r) => [r.name, r.state])).toEqual([
      ['chr20.dose.vcf.gz', 'stored'],
      ['chr20.info.txt', 'stored'],
      ['qc_report.txt', 'stored'],
    ]);
    const vcf = results[0]!;
    const bytes = new Uint8Array(await new Response(await h.files.content(vcf.fileId!)).arrayBuffer());
    expect(new TextDecoder().decode(Bun.gunzipSync(bytes))).toBe(FAKE_VCF);
    const meta = await h.files.file(vcf.fileId!);
    expect(meta?.userId).toBe(user.userId);
    expect(await h.db.select().from(fileHolds).where(eq(fileHolds.jobId, job.id))).toHaveLength(0);
    expect((await historyOf(job.id)).map((h) => h.state)).toEqual(['submitting', 'running', 'queued', 'running', 'exporting', 'completed']);
  });

  it('fails a job whose workflow failed with the server message', async () => {
    const { fake, target, job } = await wesJob();
    fake.control.queueOutcome({ state: 'EXECUTOR_ERROR', stderr: 'Error: chromosome 20 not found in panel' });
    const [row] = await drive(worker([target]), [job.id]);
    expect(row!.state).toBe('failed');
    expect(row!.errorCode).toBe('executor_error');
    expect(row!.errorMessage).toContain('chromosome 20 not found in panel');
  });

  it('keeps polling a cancelled run through CANCELING until the server says CANCELED', async () => {
    const { fake, target, job } = await wesJob({ autoAdvance: 'manual' });
    const { w, submitted } = await submitOnce(target, job);
    fake.control.advance(submitted.externalId!);
    fake.control.advance(submitted.externalId!);
    await requestCancel(job.id);

    let row = await nextRound(w, job.id);
    expect(row.state).toBe('running');
    expect(row.externalState).toBe('CANCELING');
    expect(row.nextPollAt!.getTime()).toBe(clock + 5_000);
    // Not due again until the cancel poll: a pending cancel does not spin.
    expect(await w.runOnce()).toBe(0);

    fake.control.advance(submitted.externalId!);
    row = await nextRound(w, job.id);
    expect(row.state).toBe('cancelled');
    expect(row.externalState).toBe('CANCELED');
    expect(fake.control.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/runs/${submitted.externalId}/cancel`)).length).toBeGreaterThanOrEqual(1);
  });

  it('works jobs in its own loop after start() and finishes the step in flight on stop()', async () => {
    const { fake, target, job } = await wesJob();
    const w = worker([target], { now: Date.now, idleMs: 20, pollSchedule: createPollSchedule({ firstPollMs: 5, maxPollMs: 20, jitter: 0 }) });
    w.start();
    let row = await jobRow(job.id);
    for (let i = 0; i < 400 && !TERMINAL_STATES.has(row.state); i++) {
      await Bun.sleep(10);
      row = await jobRow(job.id);
    }
    await w.stop();
    expect(row.state).toBe('completed');
    expect(row.leaseOwner).toBeNull();
    const requests = fake.control.requests.length;
    await Bun.sleep(50);
    expect(fake.control.requests).toHaveLength(requests);
  });

  it('cancels a job never submitted without calling the server', async () => {
    const { fake, target, job } = await wesJob({}, { cancelRequestedAt: new Date(clock) });
    await worker([target]).runOnce();
    expect((await jobRow(job.id)).state).toBe('cancelled');
    expect(fake.control.requests).toHaveLength(0);
  });
});

// ---- the pieces ------------------------------------------------------------------------------

describe('circuit breaker', () => {
  it('opens after the threshold, lets one probe through after the cool-down and closes on its success', () => {
    let now = 0;
    const breaker = createCircuitBreaker({ threshold: 2, coolDownMs: 1_000, now: () => now });
    breaker.failure('a');
    expect(breaker.allow('a')).toBe(true);
    breaker.failure('a');
    expect(breaker.state('a')).toBe('open');
    expect(breaker.allow('a')).toBe(false);
    expect(breaker.allow('b')).toBe(true);
    expect(breaker.retryInMs('a')).toBe(1_000);
    now = 1_000;
    expect(breaker.state('a')).toBe('half-open');
    expect(breaker.allow('a')).toBe(true);
    expect(breaker.allow('a')).toBe(false);
    expect(breaker.allow('b')).toBe(true);
    breaker.success('a');
    expect(breaker.state('a')).toBe('closed');
    expect(breaker.allow('a')).toBe(true);
  });

  it('reopens when the probe fails, and hands the probe out again when its caller never reports', () => {
    let now = 0;
    const breaker = createCircuitBreaker({ threshold: 1, coolDownMs: 10_000, probeWaitMs: 2_000, now: () => now });
    breaker.failure('a');
    now = 10_000;
    expect(breaker.allow('a')).toBe(true);
    breaker.failure('a');
    expect(breaker.state('a')).toBe('open');
    expect(breaker.retryInMs('a')).toBe(10_000);
    now = 20_000;
    expect(breaker.allow('a')).toBe(true);
    // While the probe is out, others wait briefly rather than a whole cool-down.
    expect(breaker.state('a')).toBe('half-open');
    expect(breaker.allow('a')).toBe(false);
    expect(breaker.retryInMs('a')).toBe(2_000);
    now = 29_999;
    expect(breaker.allow('a')).toBe(false);
    now = 30_000;
    expect(breaker.allow('a')).toBe(true);
  });
});

describe('poll schedule', () => {
  it('polls often at first and backs off to the cap; retries back off exponentially and are capped', () => {
    const schedule = createPollSchedule({ jitter: 0 });
    expect([0, 1, 2, 3, 4, 5, 6, 10, 500].map((n) => schedule.pollDelayMs(n))).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    expect([1, 2, 3, 8, 9, 1000].map((n) => schedule.retryDelayMs(n))).toEqual([5_000, 10_000, 20_000, 600_000, 600_000, 600_000]);
    expect(schedule.maxAttempts).toBe(10);
  });

  it('jitters each delay within its bounds', () => {
    const low = createPollSchedule({ jitter: 0.2, random: () => 0 });
    const high = createPollSchedule({ jitter: 0.2, random: () => 0.999999 });
    expect(low.pollDelayMs(0)).toBe(4_000);
    expect(high.pollDelayMs(0)).toBe(6_000);
    expect(low.busyDelayMs()).toBe(24_000);
  });
});

// ---- a worker process killed mid-submission (real PostgreSQL only) -----------------------------

describe.skipIf(!process.env.DATABASE_URL)('a worker process killed while submitting', () => {
  it('leaves one submission on the server and the job completes under another worker', async () => {
    const { fake, token } = await cloudgene();
    fake.control.addFault({ kind: 'hang', method: 'POST', path: '/api/v2/jobs/submit' });
    const target = cloudgeneTarget(fake);
    const user = await userFor(target, token);
    const job = await insertJob(target, user);
    const leaseMs = 1_500;
    const child = await h.spawnWorker({
      owner: 'child-worker',
      leaseMs,
      serviceIds: [target.service.id],
      credentials: [{ userId: user.userId, slug: target.service.slug, credential: { type: 'cloudgene-token', token } }],
    });
    try {
      for (let i = 0; i < 400 && submitsTo(fake).length === 0; i++) await Bun.sleep(25);
      expect(submitsTo(fake)).toHaveLength(1);
      const claimed = await jobRow(job.id);
      expect(claimed.state).toBe('submitting');
      expect(claimed.leaseOwner).toBe('child-worker');
    } finally {
      child.kill('SIGKILL');
      await child.exited;
    }
    fake.control.clearFaults();

    // The test's worker runs on the real clock: it can take the job only once the dead child's lease lapses.
    clock = Date.now();
    const w = worker([target], { now: Date.now, leaseMs: 10_000, pollSchedule: createPollSchedule({ firstPollMs: 10, retryBaseMs: 10, jitter: 0 }) });
    let row = await jobRow(job.id);
    for (let i = 0; i < 200 && !TERMINAL_STATES.has(row.state); i++) {
      await w.runOnce();
      row = await jobRow(job.id);
      if (!TERMINAL_STATES.has(row.state)) await Bun.sleep(50);
    }
    expect(row.state).toBe('completed');
    expect(fakeJobsNamed(fake, externalNameFor(job))).toHaveLength(1);
    expect(fake.control.jobs.size).toBe(1);
    // The hung request never created a job; the second, after a lookup found nothing, did.
    expect(submitsTo(fake)).toHaveLength(2);
    const history = (await historyOf(job.id)).map((h) => h.message ?? '');
    expect(history.some((m) => m.includes('has no submission named'))).toBe(true);
    expect((await resultsOf(job.id)).every((r) => r.state === 'stored')).toBe(true);
  }, 60_000);
});
