/**
 * Crash safety of the job worker (issue 6): a worker process killed with SIGKILL while it polls a job or
 * while it downloads a result leaves the job to another worker once its lease lapses, and the job ends
 * with one submission on the server and one stored file per result. The killed worker runs in a child
 * process (worker-process.ts) against a real PostgreSQL database it shares with this process, which is
 * why these cases are skipped without DATABASE_URL (a child cannot reach the in-memory PGlite). The fake
 * Cloudgene server hangs the request the child is in the middle of, so the kill lands exactly there.
 * (The kill during submission is covered in worker.test.ts.)
 */
import { storedFiles } from '@db/schema/files.ts';
import { createLogger } from '@shared/log.ts';
import type { Subprocess } from 'bun';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import { TERMINAL_STATES, type JobRow, type JobTarget } from '../../services/job-processor/src/domain.ts';
import { externalNameFor, resultKeyFor } from '../../services/job-processor/src/job-worker.ts';
import { createPollSchedule } from '../../services/job-processor/src/poll-schedule.ts';
import type { CloudgeneFake, CloudgeneFakeOptions } from '../fakes/cloudgene.ts';
import { createJobWorkerHarness, type JobWorkerHarness } from '../support/job-worker-harness.ts';

const logger = createLogger({ level: 'silent' });
const adapters = createAdapters({ timeoutMs: 10_000, workflow: { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' } });
/** The child's lease: short, so the test's worker may take over soon after the kill. */
const CHILD_LEASE_MS = 1_500;
/** Fast polls and retries for both workers, so no step waits seconds for its schedule. */
const FAST_SCHEDULE = { firstPollMs: 20, maxPollMs: 100, retryBaseMs: 20, retryMaxMs: 100, jitter: 0 };
const DOWNLOADS_PER_FILE = 10;
const RESULT_NAMES = ['chr_20.zip', 'qc_report.txt', 'quality-control.html', 'statistics/snps-excluded.txt'];

/** A child process cannot reach the in-memory PGlite: these cases need a real PostgreSQL database. */
const ON_POSTGRES = Boolean(process.env.DATABASE_URL);

let h: JobWorkerHarness;

beforeAll(async () => {
  if (!ON_POSTGRES) return;
  h = await createJobWorkerHarness({ name: 'worker-crash', adapters, logger });
}, 60_000);

afterAll(async () => {
  if (h) await h.close();
}, 30_000);

describe.skipIf(!ON_POSTGRES)('a worker process killed with SIGKILL', () => {
  // ---- helpers --------------------------------------------------------------------------------

  /** A fake Cloudgene server, a catalogue entry pointing at it, and a user with an input and a stored token. */
  async function setup(options: CloudgeneFakeOptions = {}) {
    const { fake, token } = await h.cloudgene({ downloadsPerFile: DOWNLOADS_PER_FILE, ...options });
    const target = h.cloudgeneTarget(fake);
    const user = await h.userFor(target, token);
    const job = await h.insertJob(target, user, { name: 'crash test' });
    return { fake, token, target, userId: user.userId, job, externalName: externalNameFor(job) };
  }

  /** Starts worker-process.ts on the shared database, working only on `target`'s service. */
  function spawnWorker(target: JobTarget, userId: string, token: string): Promise<Subprocess<'ignore', 'pipe', 'pipe'>> {
    return h.spawnWorker({
      owner: 'child-worker',
      leaseMs: CHILD_LEASE_MS,
      serviceIds: [target.service.id],
      credentials: [{ userId, slug: target.service.slug, credential: { type: 'cloudgene-token', token } }],
      pollSchedule: FAST_SCHEDULE,
    });
  }

  async function kill(child: Subprocess): Promise<void> {
    child.kill('SIGKILL');
    expect(await child.exited).not.toBe(0);
    expect(child.signalCode).toBe('SIGKILL');
  }

  /** Waits (a bounded number of short sleeps) until `ready()` holds; fails naming what never happened, with the child's log. */
  async function until(what: string, ready: () => boolean | Promise<boolean>, child?: Subprocess<'ignore', 'pipe', 'pipe'>): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (await ready()) return;
      // A child that died on its own will never get there.
      if (child && child.exitCode !== null) break;
      await Bun.sleep(25);
    }
    let log = '';
    if (child) {
      child.kill('SIGKILL');
      log = await new Response(child.stderr).text();
    }
    throw new Error(`never happened: ${what}${log ? `\nchild stderr:\n${log}` : ''}`);
  }

  const jobRow = (id: string) => h.jobRow(id);
  const historyOf = (id: string) => h.historyOf(id);
  const resultsOf = (id: string) => h.resultsOf(id);
  const submitsNamed = (fake: CloudgeneFake, name: string) => fake.control.requestsTo('/api/v2/jobs/submit', 'POST').filter((r) => r.form?.['job-name'] === name);
  const fakeJobsNamed = (fake: CloudgeneFake, name: string) => [...fake.control.jobs.values()].filter((j) => j.name === name);

  /**
   * Another worker, in this process and on the real clock, works the job until it ends. It can claim
   * the job only once the dead child's lease has lapsed; until then its rounds claim nothing.
   */
  async function takeOver(target: JobTarget, jobId: string): Promise<JobRow> {
    const w = h.worker({
      owner: 'takeover-worker',
      concurrency: 2,
      leaseMs: 10_000,
      serviceIds: [target.service.id],
      pollSchedule: createPollSchedule(FAST_SCHEDULE),
    });
    let row = await jobRow(jobId);
    for (let i = 0; i < 400 && !TERMINAL_STATES.has(row.state); i++) {
      await w.runOnce();
      row = await jobRow(jobId);
      if (!TERMINAL_STATES.has(row.state)) await Bun.sleep(25);
    }
    return row;
  }

  /** Every object file under the storage directory's objects/ tree (named by storage key). */
  async function storedObjects(): Promise<string[]> {
    const entries = await readdir(join(h.storageDir, 'objects'), { recursive: true, withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isFile()).map((e) => e.name);
  }

  // ---- the cases ------------------------------------------------------------------------------

  it('while polling a running job leaves one submission on the server, and the job completes under another worker', async () => {
    const { fake, token, target, userId, job, externalName } = await setup();
    // The child submits, then its first status poll never comes back.
    const statusPath = /^\/api\/v2\/jobs\/[^/]+\/status$/;
    fake.control.addFault({ kind: 'hang', method: 'GET', path: statusPath });
    const child = await spawnWorker(target, userId, token);
    const polls = () => fake.control.requests.filter((r) => r.method === 'GET' && statusPath.test(r.path));
    await until('the child polled the submitted job', () => polls().length > 0, child);

    const polled = await jobRow(job.id);
    expect(polled.state).toBe('running');
    expect(polled.leaseOwner).toBe('child-worker');
    expect(polled.externalId).not.toBeNull();
    expect(polls().map((r) => r.path)).toEqual([`/api/v2/jobs/${polled.externalId}/status`]);
    await kill(child);
    fake.control.clearFaults();

    const row = await takeOver(target, job.id);
    expect(row.state).toBe('completed');
    expect(row.errorCode).toBeNull();
    expect(row.leaseOwner).toBeNull();
    // The new worker polled the child's submission rather than making another.
    expect(row.externalId).toBe(polled.externalId);
    expect(submitsNamed(fake, externalName)).toHaveLength(1);
    expect(fakeJobsNamed(fake, externalName).map((j) => j.id)).toEqual([polled.externalId!]);
    expect(fake.control.jobs.size).toBe(1);
    expect(polls().length).toBeGreaterThan(1);
    expect((await historyOf(job.id)).filter((h) => h.state === 'submitting')).toHaveLength(1);
    const results = await resultsOf(job.id);
    expect(results.map((r) => r.name)).toEqual(RESULT_NAMES);
    expect(results.every((r) => r.state === 'stored' && r.fileId !== null)).toBe(true);
  }, 60_000);

  it('while downloading a result stores each result file once, leaves no orphan object, and the job completes under another worker', async () => {
    const { fake, token, target, userId, job, externalName } = await setup({ progression: 'manual' });
    // One file's download never answers: the child is mid-retrieval, some files possibly stored already.
    const hungDownload = /^\/share\/results\/[0-9a-f]{64}\/qc_report\.txt$/;
    fake.control.addFault({ kind: 'hang', method: 'GET', path: hungDownload });
    const child = await spawnWorker(target, userId, token);
    await until('the child submitted the job', () => fakeJobsNamed(fake, externalName).length === 1, child);
    const externalId = fakeJobsNamed(fake, externalName)[0]!.id;
    fake.control.complete(externalId);
    await until('the child started downloading qc_report.txt', () => fake.control.requests.some((r) => r.method === 'GET' && hungDownload.test(r.path)), child);

    const retrieving = await jobRow(job.id);
    expect(retrieving.state).toBe('exporting');
    expect(retrieving.leaseOwner).toBe('child-worker');
    const before = await resultsOf(job.id);
    expect(before.map((r) => r.name)).toEqual(RESULT_NAMES);
    expect(before.find((r) => r.name === 'qc_report.txt')!.state).toBe('pending');
    const storedByChild = new Map(before.filter((r) => r.state === 'stored').map((r) => [r.name, r.fileId]));
    await kill(child);
    fake.control.clearFaults();

    const row = await takeOver(target, job.id);
    expect(row.state).toBe('completed');
    expect(row.errorCode).toBeNull();
    expect(row.externalId).toBe(externalId);
    expect(submitsNamed(fake, externalName)).toHaveLength(1);
    expect(fake.control.jobs.size).toBe(1);

    // One stored file per result name for the job, each the one its job_results row points at.
    const stored = await h.db.select().from(storedFiles).where(eq(storedFiles.jobId, job.id));
    expect(stored.every((f) => f.kind === 'result')).toBe(true);
    expect(stored.map((f) => f.resultKey).sort()).toEqual(RESULT_NAMES.map((name) => resultKeyFor(job, name)).sort());
    const results = await resultsOf(job.id);
    expect(results.map((r) => [r.name, r.state])).toEqual(RESULT_NAMES.map((name) => [name, 'stored']));
    expect(results.map((r) => r.fileId).sort()).toEqual(stored.map((f) => f.id).sort());
    // Files the child had stored were kept, not stored again.
    for (const [name, fileId] of storedByChild) expect(results.find((r) => r.name === name)!.fileId).toBe(fileId);

    // Storage holds exactly the objects of stored rows (the input and the four results), nothing half-written.
    const rows = await h.db.select({ storageKey: storedFiles.storageKey }).from(storedFiles);
    expect((await storedObjects()).sort()).toEqual(rows.map((r) => r.storageKey).sort());
    expect(await readdir(join(h.storageDir, 'tmp')).catch(() => [])).toEqual([]);

    // Each file was downloaded once or, at worst, twice; never once per worker round.
    const counts = fake.control.jobs.get(externalId)!.files.map((f) => [f.name, DOWNLOADS_PER_FILE - f.count] as const);
    expect(counts.map(([name]) => name).sort()).toEqual([...RESULT_NAMES].sort());
    for (const [name, spent] of counts) {
      expect({ name, spent: spent >= 1 && spent <= 2 }).toEqual({ name, spent: true });
      // A file the child had recorded as stored is adopted by the new worker, not fetched again.
      if (storedByChild.has(name)) expect({ name, spent }).toEqual({ name, spent: 1 });
    }
  }, 60_000);
});
