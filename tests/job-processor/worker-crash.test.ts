/**
 * Crash safety of the job worker (issue 6): a worker process killed with SIGKILL while it polls a job or
 * while it downloads a result leaves the job to another worker once its lease lapses, and the job ends
 * with one submission on the server and one stored file per result. The killed worker runs in a child
 * process (worker-process.ts) against a real PostgreSQL database it shares with this process, which is
 * why these cases are skipped without DATABASE_URL (a child cannot reach the in-memory PGlite). The fake
 * Cloudgene server hangs the request the child is in the middle of, so the kill lands exactly there.
 * (The kill during submission is covered in worker.test.ts.)
 */
import { jobHistory, jobResults, jobs } from '@db/schema/jobs.ts';
import { storedFiles } from '@db/schema/files.ts';
import type { ServiceApp } from '@shared/app.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createLogger } from '@shared/log.ts';
import { createSecretBox, type SecretBox } from '@shared/secret-box.ts';
import type { Subprocess } from 'bun';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { asc, eq } from 'drizzle-orm';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildFileManager, serveFileManager } from '../support/file-manager.ts';
import type { ServerCredential } from '../../services/job-processor/src/adapters/adapter.ts';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import { TERMINAL_STATES, type JobRequest, type JobRow, type JobTarget } from '../../services/job-processor/src/domain.ts';
import { passwordAad } from '../../services/job-processor/src/job-store.ts';
import { createJobWorker, externalNameFor, resultKeyFor } from '../../services/job-processor/src/job-worker.ts';
import { filesClient, type FilesClient, type VaultClient } from '../../services/job-processor/src/platform-clients.ts';
import { createPollSchedule } from '../../services/job-processor/src/poll-schedule.ts';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake, type CloudgeneFakeOptions } from '../fakes/cloudgene.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, tokenFor } from '../support/test-identity.ts';
import { bgzip, makeVcf } from '../support/vcf.ts';

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

let testDb: TestDatabase;
let storageDir: string;
let fileManager: ServiceApp;
let fileServer: ReturnType<typeof serveFileManager>;
let fileManagerUrl: string;
let files: FilesClient;
let box: SecretBox;
let boxKey: Uint8Array;
const fakes: CloudgeneFake[] = [];
const children: Subprocess[] = [];
const vaultEntries = new Map<string, ServerCredential>();
const vault: VaultClient = {
  stored: async () => [],
  release: async (userId, slug) => vaultEntries.get(`${userId}/${slug}`) ?? null,
};

beforeAll(async () => {
  if (!ON_POSTGRES) return;
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  storageDir = await mkdtemp(join(tmpdir(), 'fip-worker-crash-'));
  fileManager = buildFileManager({ database: testDb.database, storageDir });
  fileServer = serveFileManager(fileManager);
  fileManagerUrl = fileServer.url;
  const credential = { authorization: async () => `Bearer ${await serviceTokenFor('job-processor')}` };
  files = filesClient(createHttpClient({ service: 'file-manager', baseUrl: fileManagerUrl, timeoutMs: 10_000, retries: 0 }), credential, fileManagerUrl);
  boxKey = crypto.getRandomValues(new Uint8Array(32));
  box = await createSecretBox([{ id: 'crash-test', key: boxKey }]);
}, 60_000);

afterAll(async () => {
  if (!ON_POSTGRES) return;
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(children.map((child) => child.exited));
  await Promise.all(fakes.map((f) => f.stop()));
  await fileServer?.stop();
  await testDb?.drop();
  if (storageDir) await rm(storageDir, { recursive: true, force: true });
});

describe.skipIf(!ON_POSTGRES)('a worker process killed with SIGKILL', () => {
  // ---- helpers --------------------------------------------------------------------------------

  /** A fake Cloudgene server, a catalogue entry pointing at it, and a user with an input and a stored token. */
  async function setup(options: CloudgeneFakeOptions = {}) {
    const token = makeFakeJwt('researcher');
    const fake = await startCloudgeneFake({ tokens: { [token]: 'researcher' }, downloadsPerFile: DOWNLOADS_PER_FILE, ...options });
    fakes.push(fake);
    const serviceId = crypto.randomUUID();
    const target: JobTarget = {
      service: {
        id: serviceId,
        slug: `cg-${serviceId.slice(0, 8)}`,
        name: 'Fake Michigan',
        protocol: 'cloudgene',
        baseUrl: fake.url,
        appId: 'imputationserver2',
        credentialType: 'cloudgene-token',
        limits: { maxActiveJobsPerUser: 2 },
      },
      panel: { id: crypto.randomUUID(), externalId: 'hapmap-2', externalKey: 'apps@hapmap-2@2.0.0', displayName: 'HapMap 2', build: 'hg19' },
    };
    const userId = crypto.randomUUID();
    vaultEntries.set(`${userId}/${target.service.slug}`, { type: 'cloudgene-token', token });
    const name = 'cohort.chr20.vcf.gz';
    const res = await fileManager.request(`/files?name=${encodeURIComponent(name)}&build=hg19`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await tokenFor(userId)}`, 'content-type': 'application/octet-stream' },
      body: bgzip(makeVcf({ samples: 4, chromosome: '20' })),
    });
    expect(res.status).toBe(201);
    const uploaded = await json(res);
    const input = { id: uploaded.id as string, name, sizeBytes: uploaded.sizeBytes as number };

    const id = Bun.randomUUIDv7();
    const request: JobRequest = {
      inputFileIds: [input.id],
      build: 'hg19',
      phasing: 'eagle',
      population: 'eur',
      mode: 'imputation',
      r2Filter: 0,
      inputs: [{ ...input, samples: 4 }],
    };
    const [job] = await testDb.database.db
      .insert(jobs)
      .values({ id, userId, name: 'crash test', serviceId: target.service.id, panelId: target.panel.externalId, request, target, passwordSealed: await box.seal('Pass-word_123', passwordAad(id)) })
      .returning();
    return { fake, token, target, userId, job: job!, externalName: externalNameFor(job!) };
  }

  /** Starts worker-process.ts on the shared database, working only on `target`'s service. */
  async function spawnWorker(target: JobTarget, userId: string, token: string): Promise<Subprocess<'ignore', 'pipe', 'pipe'>> {
    const config = {
      databaseUrl: testDb.url,
      fileManagerUrl,
      serviceToken: await serviceTokenFor('job-processor'),
      credentials: [{ userId, slug: target.service.slug, credential: { type: 'cloudgene-token', token } }],
      secretKey: { id: 'crash-test', key: Buffer.from(boxKey).toString('base64') },
      leaseMs: CHILD_LEASE_MS,
      serviceIds: [target.service.id],
      owner: 'child-worker',
      pollSchedule: FAST_SCHEDULE,
    };
    const child = Bun.spawn([process.execPath, resolve(import.meta.dir, 'worker-process.ts'), JSON.stringify(config)], {
      cwd: resolve(import.meta.dir, '../..'),
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
    children.push(child);
    return child;
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

  const jobRow = async (id: string): Promise<JobRow> => (await testDb.database.db.select().from(jobs).where(eq(jobs.id, id)))[0]!;
  const historyOf = (id: string) => testDb.database.db.select().from(jobHistory).where(eq(jobHistory.jobId, id)).orderBy(asc(jobHistory.at), asc(jobHistory.id));
  const resultsOf = (id: string) => testDb.database.db.select().from(jobResults).where(eq(jobResults.jobId, id)).orderBy(asc(jobResults.name));
  const submitsNamed = (fake: CloudgeneFake, name: string) => fake.control.requestsTo('/api/v2/jobs/submit', 'POST').filter((r) => r.form?.['job-name'] === name);
  const fakeJobsNamed = (fake: CloudgeneFake, name: string) => [...fake.control.jobs.values()].filter((j) => j.name === name);

  /**
   * Another worker, in this process and on the real clock, works the job until it ends. It can claim
   * the job only once the dead child's lease has lapsed; until then its rounds claim nothing.
   */
  async function takeOver(target: JobTarget, jobId: string): Promise<JobRow> {
    const w = createJobWorker({
      db: testDb.database.db,
      adapters,
      files,
      vault,
      secretBox: box,
      logger,
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
    const entries = await readdir(join(storageDir, 'objects'), { recursive: true, withFileTypes: true }).catch(() => []);
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
    const stored = await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.jobId, job.id));
    expect(stored.every((f) => f.kind === 'result')).toBe(true);
    expect(stored.map((f) => f.resultKey).sort()).toEqual(RESULT_NAMES.map((name) => resultKeyFor(job, name)).sort());
    const results = await resultsOf(job.id);
    expect(results.map((r) => [r.name, r.state])).toEqual(RESULT_NAMES.map((name) => [name, 'stored']));
    expect(results.map((r) => r.fileId).sort()).toEqual(stored.map((f) => f.id).sort());
    // Files the child had stored were kept, not stored again.
    for (const [name, fileId] of storedByChild) expect(results.find((r) => r.name === name)!.fileId).toBe(fileId);

    // Storage holds exactly the objects of stored rows (the input and the four results), nothing half-written.
    const rows = await testDb.database.db.select({ storageKey: storedFiles.storageKey }).from(storedFiles);
    expect((await storedObjects()).sort()).toEqual(rows.map((r) => r.storageKey).sort());
    expect(await readdir(join(storageDir, 'tmp')).catch(() => [])).toEqual([]);

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
